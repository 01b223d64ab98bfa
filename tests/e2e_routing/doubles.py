"""Stand-ins on the network: an upstream that always rejects, a link that adds latency.

Both are plain TCP servers in threads of the test process, so the proxy
under test talks to them exactly as it would to the real thing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubUpstream:
    """An OpenAI-shaped upstream that answers every request with one fixed error.

    The simulator has no fault for a plain 400, so this stands in for a
    provider rejecting a request: it counts what it is sent.
    """

    status: int
    server: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)


def start_stub_upstream(status: int, message: str) -> StubUpstream:
    """Serve ``{"error": {...}}`` with ``status`` on a free port, in a thread."""
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    ).encode()
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="stub-upstream", daemon=True)
    thread.start()
    return StubUpstream(status, server, thread, seen)


class SlowLink:
    """A TCP forwarder that delays every reply from ``target`` by ``delay_s``.

    It puts a server a given round trip away (Redis in another zone, say)
    without touching the server itself, which other tests share.
    """

    def __init__(self, target: tuple[str, int], *, delay_s: float) -> None:
        self._target = target
        self._delay_s = delay_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="slow-link", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed.is_set():
                    client.close()
                    return
                upstream = socket.create_connection(self._target)
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self._delay_s), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delay_s: float) -> None:
        try:
            while data := source.recv(65536):
                if delay_s:
                    time.sleep(delay_s)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            self._listener.close()
            for sock in self._sockets:
                sock.close()
