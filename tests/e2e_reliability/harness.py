"""What the reliability tests add to the shared processes: configs, service checks,
the ledger's request ids, and a TCP forwarder.

The forwarder stands between the proxy and a shared server so a test can cut
and restore the connection without touching the server other tests use.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port
from tests.support.servers import Simulator

SIM_KEY = "sim-key"
# How long the simulator's ``timeout`` fault holds a request.
SIM_HOLD_S = 3.0
# How long a proxy may take to finish its in-flight requests after SIGTERM.
DRAIN_TIMEOUT_S = 40.0
PRICE = {"input": "1.00", "output": "2.00"}


def require_service(name: str, reachable: bool) -> None:
    """Fail under CI, skip elsewhere, when a service the test needs is not there."""
    if reachable:
        return
    message = f"{name} is not reachable"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def sim_config(sim: Simulator, ledger_url: str, **sections: Any) -> dict[str, Any]:
    """Providers pointing at ``sim``; ``sections`` replace whole top-level keys."""
    config: dict[str, Any] = {
        "providers": {
            "openai": {"type": "openai", "base_url": sim.openai_base_url, "api_key": SIM_KEY},
            "anthropic": {"type": "anthropic", "base_url": sim.base_url, "api_key": SIM_KEY},
        },
        "models": [
            {"name": "gpt-4o", "provider": "openai", "tier": "large", "price": PRICE},
            {
                "name": "claude-sonnet",
                "provider": "anthropic",
                "upstream": "claude-sonnet-4-5",
                "tier": "large",
                "price": PRICE,
            },
        ],
        "routing": {"breaker_failures": 1000, "retry_base_s": 0.01, "retry_cap_s": 0.05},
        "ledger": {"url": ledger_url},
        "cache": {"backend": "memory"},
    }
    config.update(sections)
    return config


def sqlite_request_ids(path: Path) -> list[str]:
    """Every request id in a SQLite ledger file, one per row."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT request_id FROM ledger_rows")]


@dataclass
class TcpForwarder:
    """Forwards 127.0.0.1:<port> to a target; ``cut`` drops everything, ``resume`` listens again."""

    target: tuple[str, int]
    port: int = field(default_factory=free_port)
    _listener: socket.socket | None = None
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _serving: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._serving.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._serving.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Stop listening and drop every open connection, as a dead server would."""
        self._serving.clear()
        if self._listener is not None:
            # A thread blocked in accept() keeps a closed socket listening; shutdown wakes it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def resume(self) -> None:
        self.start()

    def close(self) -> None:
        self.cut()
