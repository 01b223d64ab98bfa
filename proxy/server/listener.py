"""One listening socket per worker of ``--workers N``, on the same port.

With one socket shared by every worker, whichever worker wakes first accepts
every connection waiting in the queue (the event loop accepts in a loop), so
a client that opens its connection pool in a burst can land on one worker
while the others idle: measured here, 64 connections opened in a tight loop
went 64 to 0 in one run of three, and under wrk two workers sometimes
served 1.1-1.4x one worker's requests instead of 1.7-2x. With
``SO_REUSEPORT`` each worker listens on a socket of its own and the kernel
spreads new connections over them by a hash of the connection's addresses.

The supervisor binds the port first (so a port taken by another program
fails before any worker starts) and hands that socket to each worker; the
socket pickles as its address, so each worker process, on unpickling,
binds a socket of its own to that address and listens on that one. The
supervisor's socket never listens and so never receives a connection.
"""

from __future__ import annotations

import socket
import sys
from typing import Any


def reuse_port_spreads() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bound(family: int, address: Any) -> socket.socket:
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_worker_socket(family: int, address: Any) -> socket.socket:
    """A worker's own socket on the supervisor's address (called when unpickled)."""
    return _bound(family, address)


class PerWorkerSocket(socket.socket):
    """The supervisor's bound socket; each process that unpickles it gets its own."""

    def __reduce__(self) -> tuple[Any, tuple[int, Any]]:
        return bind_worker_socket, (int(self.family), self.getsockname())


def bind_per_worker(host: str, port: int) -> socket.socket:
    """The supervisor's socket for ``host``:``port``, bound and not listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    plain = _bound(family, (host, port))
    # Rewrapping the descriptor keeps the options and the bound address.
    return PerWorkerSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=plain.detach())
