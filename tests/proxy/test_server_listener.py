"""Per-worker listening sockets: what the supervisor hands each worker, and how the kernel
spreads connections over them."""

from __future__ import annotations

import pickle
import socket
from multiprocessing.reduction import ForkingPickler

import pytest

from proxy.server.listener import PerWorkerSocket, bind_per_worker, reuse_port_spreads

pytestmark = pytest.mark.skipif(
    not reuse_port_spreads(), reason="SO_REUSEPORT spreading is Linux's"
)

CONNECTIONS = 64


def unpickled_in_worker(sock: socket.socket) -> socket.socket:
    """What a worker process gets: multiprocessing pickles its arguments this way."""
    return pickle.loads(bytes(ForkingPickler.dumps(sock)))  # type: ignore[no-any-return]


def test_each_worker_binds_a_socket_of_its_own_on_the_supervisors_address() -> None:
    with bind_per_worker("127.0.0.1", 0) as parent:
        assert isinstance(parent, PerWorkerSocket)
        address = parent.getsockname()
        with unpickled_in_worker(parent) as one, unpickled_in_worker(parent) as two:
            assert one.getsockname() == two.getsockname() == address
            assert len({parent.fileno(), one.fileno(), two.fileno()}) == 3
            for sock in (one, two):
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
                assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


def test_the_kernel_spreads_a_burst_of_connections_over_the_workers_sockets() -> None:
    """The supervisor's socket never listens, so every connection reaches a worker's."""
    with bind_per_worker("127.0.0.1", 0) as parent:
        workers = [unpickled_in_worker(parent) for _ in range(2)]
        clients: list[socket.socket] = []
        try:
            for sock in workers:
                sock.listen(CONNECTIONS)
                sock.setblocking(False)
            for _ in range(CONNECTIONS):
                clients.append(socket.create_connection(parent.getsockname(), timeout=5))
            accepted = [_drain(sock) for sock in workers]
        finally:
            for sock in (*workers, *clients):
                sock.close()
    assert sum(accepted) == CONNECTIONS
    # Each connection goes to either socket by a hash of its addresses: a worker
    # with fewer than 16 of 64 has a chance of about 1 in 30,000.
    assert min(accepted) >= CONNECTIONS // 4, accepted


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_a_port_another_program_listens_on_is_refused() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        with pytest.raises(OSError):
            bind_per_worker("127.0.0.1", other.getsockname()[1])
