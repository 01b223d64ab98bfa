"""Real processes for the reliability tests: simulator, proxy, redis, and a TCP forwarder.

Children write their output to files (a pipe nobody reads would block them).
The forwarder stands between the proxy and a shared server so a test can cut
and restore the connection without touching the server other tests use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / ".." / "shared" / "data" / "tiktoken"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 40.0
SIM_KEY = "sim-key"
PRICE = {"input": "1.00", "output": "2.00"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


@dataclass
class Process:
    """A child process whose stdout and stderr go to files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        return (
            f"{self.name} (exit code {self.popen.poll()})\n"
            f"--- stdout ---\n{self.stdout()[-4000:]}\n--- stderr ---\n{self.stderr()[-4000:]}"
        )

    def terminate(self, *, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; SIGKILL if it is still there after ``timeout_s``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=5)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_CONFIG"}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return env


def spawn(name: str, argv: Sequence[str], *, workdir: Path) -> Process:
    """Start ``argv`` with output captured to files in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        popen = subprocess.Popen(
            list(argv),
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            cwd=str(workdir),
        )
    return Process(name, popen, out, err)


def wait_until(
    process: Process, ready: Callable[[], Any], *, timeout_s: float = START_TIMEOUT_S
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited during start-up\n{process.describe()}")
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{process.name} not ready after {timeout_s} s\n{process.describe()}")


@dataclass
class Simulator:
    process: Process
    base_url: str

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def arm(self, mode: str, *, count: int = 1, model: str | None = None, **extra: int) -> None:
        body: dict[str, Any] = {"mode": mode, "count": count, **extra}
        if model is not None:
            body["model"] = model
        httpx.post(f"{self.base_url}/_sim/faults", json=body, timeout=5).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/_sim/reset", timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=5)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def start_simulator(workdir: Path, *, delay_ms: int = 0, hold_s: float = 3.0) -> Simulator:
    """``python -m proxy.simulator --port 0``; waits for its listening line."""
    argv = [sys.executable, "-m", "proxy.simulator", "--port", "0", "--timeout-s", str(hold_s)]
    process = spawn("simulator", [*argv, "--delay-ms", str(delay_ms)], workdir=workdir)
    marker = "simulated provider listening on "

    def listening() -> str | None:
        for line in process.stdout().splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        return None

    return Simulator(process, wait_until(process, listening))


@dataclass
class Proxy:
    process: Process
    base_url: str
    workdir: Path

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def metrics(self) -> str:
        return httpx.get(f"{self.base_url}/metrics", timeout=5).text


def healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_proxy(config: Mapping[str, Any], workdir: Path, *, name: str = "proxy") -> Proxy:
    """``python -m proxy.cli serve --config FILE --port P``; waits for ``/healthz``."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path)]
        process = spawn(name, [*argv, "--port", str(port)], workdir=workdir)
        try:
            wait_until(process, functools.partial(healthy, base_url))
        except RuntimeError as exc:
            process.kill()
            last = exc
            continue
        return Proxy(process, base_url, workdir)
    assert last is not None
    raise last


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


def start_redis(workdir: Path) -> tuple[Process, int]:
    """A private redis-server on a free port, nothing persisted."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]  # fmt: skip
    process = spawn(f"redis-{port}", argv, workdir=workdir)
    wait_until(process, lambda: port_open("127.0.0.1", port))
    return process, port


def restart_redis(workdir: Path, port: int) -> Process:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]  # fmt: skip
    process = spawn(f"redis-{port}-again", argv, workdir=workdir)
    wait_until(process, lambda: port_open("127.0.0.1", port))
    return process
