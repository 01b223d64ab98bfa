"""Identical requests in flight together cost one upstream call, counted at the upstream.

The simulator answers after 300 ms, so eight identical requests sent at once
all arrive while the first is still waiting for its answer. With the Redis
backend and two workers the group spans processes (a Redis lock); with the
memory backend and one worker it is in-process. Each request has its own
connection; the streaming ones and the whole ones must all see one answer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_cache.answers import Answer, of_chunks, of_completion
from tests.e2e_cache.harness import (
    MODEL,
    Proxy,
    delete_prefix,
    keys_under,
    proxy_config,
    require_shared_redis,
    shared_redis_reachable,
    tagged,
)
from tests.support.servers import ProxyLaunch, Simulator, start_simulator
from tests.support.sockets import established_by_pid

pytestmark = [pytest.mark.e2e]

CLIENTS = 8
UPSTREAM_DELAY_MS = 300
# Sampled while every request waits on the slow upstream answer.
SAMPLE_AFTER_S = 0.15
BURST_ATTEMPTS = 4
REDIS_PREFIX = f"test:e2e-cache:{uuid.uuid4().hex}:coalesce:"


@pytest.fixture(scope="module")
def slow_sim(workdir: Path, child_environment: dict[str, str]) -> Iterator[Simulator]:
    simulator = start_simulator(workdir, env=child_environment, delay_ms=UPSTREAM_DELAY_MS)
    try:
        yield simulator
    finally:
        simulator.process.stop()


@pytest.fixture(scope="module")
def proxies(
    slow_sim: Simulator, workdir: Path, child_environment: dict[str, str]
) -> Iterator[dict[str, Proxy]]:
    """Both proxies on the slow simulator, started side by side.

    "redis": two workers on the shared Redis (only when it answers);
    "memory": one worker with the in-process cache.
    """
    with_redis = shared_redis_reachable() is None
    memory = proxy_config(slow_sim, workdir, cache={"backend": "memory"})
    launches = {"memory": ProxyLaunch(memory, workdir, kind=Proxy, env=child_environment)}
    if with_redis:
        cache = {"backend": "redis", "prefix": REDIS_PREFIX, "lookup_timeout_ms": 500}
        on_redis = proxy_config(slow_sim, workdir, cache=cache)
        launches["redis"] = ProxyLaunch(
            on_redis, workdir, kind=Proxy, env=child_environment, workers=2
        )
    try:
        yield {name: launch.wait() for name, launch in launches.items()}
    finally:
        for launch in launches.values():
            launch.stop()
        if with_redis:
            delete_prefix(REDIS_PREFIX)


@dataclass
class Reply:
    status: str
    answer: Answer


def one_request(
    proxy: Proxy, body: dict[str, Any], *, key: str, stream: bool, go: threading.Barrier
) -> Reply:
    """One client on its own connection, released together with the others."""
    with proxy.client(key) as client:
        client.models.list()  # the connection is open before the race starts
        go.wait(timeout=10)
        if stream:
            raw = client.chat.completions.with_raw_response.create(**body, stream=True)
            return Reply(raw.headers["x-spendgate-cache"], of_chunks(raw.parse()))
        raw = client.chat.completions.with_raw_response.create(**body)
        return Reply(raw.headers["x-spendgate-cache"], of_completion(raw.parse()))


def burst(
    proxy: Proxy, body: dict[str, Any], keys: Sequence[str] = ("k-a",)
) -> tuple[list[Reply], dict[int, int]]:
    """Send ``CLIENTS`` identical requests at once, half of them streaming.

    Client ``i`` streams when ``i`` is even and uses ``keys[(i // 2) % len(keys)]``,
    so every tenant has streaming and whole requests. Also returns how many of
    the connections each worker process held while the requests were in flight.
    """
    go = threading.Barrier(CLIENTS + 1)
    replies: list[Reply | BaseException | None] = [None] * CLIENTS

    def run(i: int) -> None:
        try:
            key = keys[(i // 2) % len(keys)]
            replies[i] = one_request(proxy, body, key=key, stream=i % 2 == 0, go=go)
        except BaseException as exc:  # reported by the main thread
            replies[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    go.wait(timeout=10)
    time.sleep(SAMPLE_AFTER_S)
    spread = established_by_pid(proxy.port, proxy.workers())
    for thread in threads:
        thread.join(timeout=30)
    failures = [r for r in replies if not isinstance(r, Reply)]
    assert not failures, failures
    return [r for r in replies if isinstance(r, Reply)], spread


def check_one_answer(replies: list[Reply], sim: Simulator) -> None:
    assert len(replies) == CLIENTS
    assert sim.chat_calls() == 1, sim.stats()
    assert sim.stats()["by_model"] == {MODEL: 1}
    first = replies[0].answer
    assert first.content and first.finish_reason == "stop"
    for reply in replies:
        assert reply.answer.id == first.id
        assert reply.answer.content == first.content
        assert reply.answer.finish_reason == first.finish_reason
    statuses = sorted(r.status for r in replies)
    assert statuses.count("miss") == 1, statuses
    assert set(statuses) <= {"miss", "exact"}, statuses


def fresh_body() -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": tagged("Name a colour.")}]}


@pytest.mark.redis
def test_identical_requests_across_two_workers_make_one_upstream_call(
    slow_sim: Simulator, proxies: dict[str, Proxy]
) -> None:
    require_shared_redis()
    proxy = proxies["redis"]
    proxy.wait_for_workers()
    spreads = []
    for _ in range(BURST_ATTEMPTS):
        slow_sim.reset()
        replies, spread = burst(proxy, fresh_body())
        check_one_answer(replies, slow_sim)
        spreads.append(spread)
        if all(spread.values()):
            break
    # The kernel hands connections to whichever worker accepts first; a burst
    # that landed on one worker alone proves nothing about the Redis lock.
    assert len(spread) == 2 and all(spread.values()), f"one worker took all: {spreads}"
    # The leader drops its lock once its answer is stored; a leaked lock would
    # hold later followers back for the lock's whole TTL.
    deadline = time.monotonic() + 3.0
    while keys_under(REDIS_PREFIX + "lock:") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keys_under(REDIS_PREFIX + "lock:") == 0


def test_identical_requests_in_one_worker_make_one_upstream_call(
    slow_sim: Simulator, proxies: dict[str, Proxy]
) -> None:
    slow_sim.reset()
    replies, _ = burst(proxies["memory"], fresh_body())
    check_one_answer(replies, slow_sim)


def test_concurrent_identical_requests_of_two_tenants_never_share_an_answer(
    slow_sim: Simulator, proxies: dict[str, Proxy]
) -> None:
    slow_sim.reset()
    replies, _ = burst(proxies["memory"], fresh_body(), keys=("k-a", "k-b"))
    # Clients 0, 1, 4, 5 are tenant a; 2, 3, 6, 7 tenant b.
    ids_a = {replies[i].answer.id for i in (0, 1, 4, 5)}
    ids_b = {replies[i].answer.id for i in (2, 3, 6, 7)}
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b, (ids_a, ids_b)
    assert slow_sim.chat_calls() == 2
