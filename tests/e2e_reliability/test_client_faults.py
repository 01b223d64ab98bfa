"""Clients misbehaving: leaving mid-stream, reading slowly, holding thousands of idle sockets."""

from __future__ import annotations

import json
import resource
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e_reliability.harness import (
    DRAIN_TIMEOUT_S,
    PRICE,
    SIM_HOLD_S,
    sim_config,
)
from tests.support.servers import Proxy, Simulator, start_proxy, start_simulator

pytestmark = pytest.mark.e2e

IDLE_CONNECTIONS = 10_000
SLOW_MODEL = "gpt-slow"


@pytest.fixture(scope="module")
def fd_limit() -> Iterator[int]:
    """The soft RLIMIT_NOFILE raised as far as the hard limit allows (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS + 1000  # each process (this one, the proxy) needs one fd a socket
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    try:
        yield max(soft, target)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    simulator = start_simulator(tmp_path_factory.mktemp("sim"), hold_s=SIM_HOLD_S)
    try:
        yield simulator
    finally:
        simulator.process.stop(timeout_s=5)


@pytest.fixture(scope="module")
def proxy(
    sim: Simulator, tmp_path_factory: pytest.TempPathFactory, fd_limit: int
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("proxy")
    config = sim_config(sim, f"sqlite:///{workdir / 'ledger.db'}")
    config["models"].append(
        {"name": SLOW_MODEL, "provider": "openai", "upstream": SLOW_MODEL, "price": PRICE}
    )
    config["cache"] = {"enabled": False}
    server = start_proxy(config, workdir, kind=Proxy, stop_timeout_s=DRAIN_TIMEOUT_S)
    try:
        yield server
    finally:
        server.process.stop()


def body(model: str = "gpt-4o", *, stream: bool = False) -> dict[str, object]:
    content = f"client fault test {uuid.uuid4().hex}"
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


def cancelled(sim: Simulator) -> int:
    count: int = sim.stats()["cancelled"]
    return count


def test_a_client_leaving_mid_stream_cancels_the_upstream_request(
    sim: Simulator, proxy: Proxy
) -> None:
    before = cancelled(sim)
    sim.arm("slow", count=1, model=SLOW_MODEL, delay_ms=300)
    request = body(SLOW_MODEL, stream=True)
    with (
        httpx.Client(base_url=proxy.base_url, timeout=10) as client,
        client.stream("POST", "/v1/chat/completions", json=request) as reply,
    ):
        assert reply.status_code == 200
        first = next(reply.iter_raw())
        assert first.startswith(b"data:")
        # leaving the block closes the connection with most of the stream unread
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and cancelled(sim) <= before:
        time.sleep(0.05)
    assert cancelled(sim) > before, "the upstream kept streaming to a client that had gone"


def slow_reader(proxy: Proxy, stop: threading.Event, errors: list[str]) -> None:
    """Asks for a long stream over a tiny receive buffer and reads a few bytes at a time."""
    host, port = proxy.base_url.removeprefix("http://").split(":")
    payload = json.dumps(body(SLOW_MODEL, stream=True)).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json"
        f"\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    try:
        sock.connect((host, int(port)))
        sock.sendall(request)
        while not stop.is_set():
            if not sock.recv(16):
                break
            time.sleep(0.05)
    except OSError as exc:
        errors.append(repr(exc))
    finally:
        sock.close()


def timed_requests(proxy: Proxy, count: int) -> list[float]:
    latencies = []
    with httpx.Client(base_url=proxy.base_url, timeout=10) as client:
        for i in range(count):
            started = time.monotonic()
            reply = client.post("/v1/chat/completions", json=body(stream=i % 2 == 0))
            assert reply.status_code == 200, reply.text
            latencies.append(time.monotonic() - started)
    return latencies


def test_slow_readers_do_not_slow_other_clients(sim: Simulator, proxy: Proxy) -> None:
    readers = 20
    baseline = statistics.median(timed_requests(proxy, 10))
    sim.arm("slow", count=readers, model=SLOW_MODEL, delay_ms=20)
    stop = threading.Event()
    errors: list[str] = []
    threads = [
        threading.Thread(target=slow_reader, args=(proxy, stop, errors), daemon=True)
        for _ in range(readers)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # the slow streams are open and backed up
        during = timed_requests(proxy, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    assert not errors, errors
    # Generous bounds: this catches a blocked event loop (seconds), not a few ms of jitter.
    assert max(during) < max(1.0, 20 * baseline), (baseline, sorted(during)[-5:])
    assert statistics.median(during) < max(0.5, 10 * baseline), (baseline, during)


def open_idle(proxy: Proxy, count: int) -> list[socket.socket]:
    host, port = proxy.base_url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.settimeout(10)
            sock.connect((host, int(port)))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def test_ten_thousand_idle_connections_do_not_exhaust_the_proxy(
    proxy: Proxy, fd_limit: int
) -> None:
    count = min(IDLE_CONNECTIONS, fd_limit - 500)
    if count < IDLE_CONNECTIONS:
        print(f"RLIMIT_NOFILE allows only {count} idle connections, not {IDLE_CONNECTIONS}")
    idle = open_idle(proxy, count)
    try:
        time.sleep(1.0)  # the proxy has accepted them all
        started = time.monotonic()
        with httpx.Client(base_url=proxy.base_url, timeout=10) as client:
            reply = client.post("/v1/chat/completions", json=body())
            health = client.get("/healthz")
        elapsed = time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()
    assert reply.status_code == 200, reply.text
    assert health.status_code == 200
    assert elapsed < 5.0, f"a normal request took {elapsed:.1f} s next to {count} idle sockets"
    assert count >= 1000, f"only {count} sockets could be opened"
