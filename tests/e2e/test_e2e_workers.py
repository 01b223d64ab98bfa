"""``serve --workers 2``: a client's burst of connections lands on both workers, and a
taken port stops the server with a plain message."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from proxy.server.listener import reuse_port_spreads
from tests.support.processes import child_env, python_module
from tests.support.servers import Proxy, start_proxy
from tests.support.sockets import established_by_pid, listens_on

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not reuse_port_spreads(), reason="SO_REUSEPORT spreading is Linux's"),
]

CONNECTIONS = 64
START_S = 60


def config(workdir: Path) -> dict[str, object]:
    return {"ledger": {"url": f"sqlite:///{workdir / 'ledger.db'}"}}


def burst(proxy: Proxy, connections: int) -> dict[int, int]:
    """Open ``connections`` connections in a tight loop, as a load generator or a client's
    pool warming up does, then one keep-alive request on each; which worker holds how
    many of them."""
    address = ("127.0.0.1", proxy.port)
    opened = [socket.create_connection(address, timeout=10) for _ in range(connections)]
    try:
        request = b"GET /healthz HTTP/1.1\r\nHost: spendgate\r\n\r\n"
        for sock in opened:
            sock.sendall(request)
        for sock in opened:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "no answer on a connection"
        return established_by_pid(proxy.port, proxy.workers())
    finally:
        for sock in opened:
            sock.close()


def assert_spread(spread: dict[int, int]) -> None:
    """Every connection reached a worker, and each worker holds a fair share."""
    assert sum(spread.values()) == CONNECTIONS, spread
    # One shared socket let the first worker to wake take all 64; the kernel's hash
    # leaves a worker under 16 about once in 30,000 bursts.
    assert min(spread.values()) >= CONNECTIONS // 4, spread


def test_a_burst_of_connections_is_spread_over_both_workers(tmp_path: Path) -> None:
    proxy = start_proxy(config(tmp_path), tmp_path, kind=Proxy, workers=2)
    try:
        workers = proxy.workers()
        assert len(workers) == 2
        # The supervisor only holds the port: a connection it took would never be answered.
        assert not listens_on(proxy.process.pid, proxy.port)
        for _ in range(2):
            assert_spread(burst(proxy, CONNECTIONS))
    finally:
        proxy.stop()


def test_a_worker_that_dies_is_replaced_on_a_socket_of_its_own(tmp_path: Path) -> None:
    """The supervisor starts a new worker, which binds its own socket on the port again
    and takes its share of the next burst."""
    proxy = start_proxy(config(tmp_path), tmp_path, kind=Proxy, workers=2)
    try:
        dead, survivor = proxy.workers()
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + START_S
        workers = proxy.workers()
        while not (len(workers) == 2 and dead not in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = proxy.workers()
        assert survivor in workers and dead not in workers and len(workers) == 2, workers
        assert_spread(burst(proxy, CONNECTIONS))
    finally:
        proxy.stop()


def test_a_port_already_taken_stops_the_server_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "spendgate.json"
    path.write_text(json.dumps(config(tmp_path)), encoding="utf-8")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        argv = python_module(
            "proxy.cli", "serve", "--config", str(path), "--port", str(port), "--workers", "2"
        )
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=START_S, env=child_env(), check=False
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
