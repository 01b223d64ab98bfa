"""Coalescing identical in-flight requests, in one process and across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from cache.coalesce import CoalescePolicy
from cache.memory import MemoryStore
from cache.policy import CacheMode
from cache.redis_store import RedisStore
from cache.service import ResponseCache
from routing.breaker import BreakerPolicy, CircuitBreaker

pytestmark = pytest.mark.anyio

ClientFactory = Callable[..., aioredis.Redis]

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "same question"}]}
N = 8


def answer(content: str = "same answer", finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-lead",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
    }


class Upstream:
    """Counts calls; each call waits for the gate so followers pile up meanwhile."""

    def __init__(self, result: Callable[[], dict[str, Any]] = answer) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.result = result

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await self.gate.wait()
        return self.result()


async def request(
    cache: ResponseCache, upstream: Upstream, outcomes: list[tuple[str, dict[str, Any]]]
) -> None:
    async with cache.flight(BODY, namespace="t", model="m") as flight:
        if flight.answer is not None:
            outcomes.append((flight.role, flight.answer))
            return
        completion = await upstream()
        await flight.publish(completion)
        outcomes.append((flight.role, completion))


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def memory_cache(**kwargs: Any) -> ResponseCache:
    return ResponseCache(MemoryStore(1_000_000), ttl_s=60, **kwargs)


async def test_concurrent_identical_requests_make_one_upstream_call() -> None:
    cache = memory_cache()
    upstream = Upstream()
    outcomes: list[tuple[str, dict[str, Any]]] = []
    with anyio.fail_after(10):
        tasks = [asyncio.create_task(request(cache, upstream, outcomes)) for _ in range(N)]
        await until(lambda: upstream.calls == 1)
        for _ in range(5):
            await asyncio.sleep(0)
        upstream.gate.set()
        await asyncio.gather(*tasks)
    assert upstream.calls == 1
    assert sorted(role for role, _ in outcomes) == ["follower"] * (N - 1) + ["leader"]
    assert all(completion == answer() for _, completion in outcomes)
    assert cache.metrics()["coalesce_followers"] == N - 1
    assert await cache.lookup(BODY, namespace="t", model="m") is not None


async def test_followers_get_their_own_copy() -> None:
    cache = memory_cache()
    upstream = Upstream()
    outcomes: list[tuple[str, dict[str, Any]]] = []
    with anyio.fail_after(10):
        tasks = [asyncio.create_task(request(cache, upstream, outcomes)) for _ in range(3)]
        await until(lambda: upstream.calls == 1)
        await asyncio.sleep(0)
        upstream.gate.set()
        await asyncio.gather(*tasks)
    followers = [c for role, c in outcomes if role == "follower"]
    followers[0]["id"] = "changed"
    assert followers[1]["id"] == "chatcmpl-lead"


async def test_a_failing_leader_hands_over_to_exactly_one_follower() -> None:
    cache = memory_cache()
    gate = asyncio.Event()
    roles: list[str] = []
    calls = 0

    async def one(fail: bool) -> None:
        nonlocal calls
        try:
            async with cache.flight(BODY, namespace="t", model="m") as flight:
                roles.append(flight.role)
                if flight.answer is None:
                    calls += 1
                    await gate.wait()
                    if fail:
                        raise RuntimeError("upstream exploded")
                    await flight.publish(answer())
        except RuntimeError:
            pass

    with anyio.fail_after(10):
        leader = asyncio.create_task(one(fail=True))
        await until(lambda: calls == 1)
        followers = [asyncio.create_task(one(fail=False)) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(leader, *followers)
    assert roles == ["leader", "leader", "follower", "follower"]
    assert calls == 2
    assert cache.metrics()["coalesce_takeovers"] == 1


async def test_each_failing_leader_is_replaced_by_one_follower() -> None:
    cache = memory_cache()
    calls = 0

    async def one() -> str:
        nonlocal calls
        async with cache.flight(BODY, namespace="t", model="m") as flight:
            if flight.answer is not None:
                return "served"
            calls += 1
            await asyncio.sleep(0.01)
            if calls < 3:
                return "failed"  # leaves without publishing: the flight failed
            await flight.publish(answer())
            return "led"

    with anyio.fail_after(10):
        results = await asyncio.gather(*(one() for _ in range(N)))
    assert calls == 3  # one upstream call per round, never one per waiting request
    assert sorted(results) == ["failed", "failed", "led"] + ["served"] * (N - 3)


async def test_an_uncacheable_leader_answer_is_not_handed_to_followers() -> None:
    cache = memory_cache()
    upstream = Upstream(result=lambda: answer(finish="length"))
    outcomes: list[tuple[str, dict[str, Any]]] = []
    with anyio.fail_after(10):
        tasks = [asyncio.create_task(request(cache, upstream, outcomes)) for _ in range(4)]
        await until(lambda: upstream.calls == 1)
        await asyncio.sleep(0)
        upstream.gate.set()
        await asyncio.gather(*tasks)
    assert upstream.calls == 4
    assert sorted(role for role, _ in outcomes) == ["leader", "solo", "solo", "solo"]
    assert await cache.lookup(BODY, namespace="t", model="m") is None


@pytest.mark.parametrize(
    ("mode", "stored"),
    [(CacheMode(lookup=False, store=True), True), (CacheMode(lookup=True, store=False), False)],
)
async def test_refresh_and_no_store_requests_go_alone(mode: CacheMode, stored: bool) -> None:
    cache = memory_cache()
    async with cache.flight(BODY, namespace="t", model="m") as leader:
        async with cache.flight(BODY, namespace="t", model="m", mode=mode) as other:
            assert other.role == "solo" and other.answer is None
            assert await other.publish(answer("fresh")) is stored
        await leader.publish(answer())
    hit = await cache.lookup(BODY, namespace="t", model="m")
    assert hit is not None


def redis_cache(client: aioredis.Redis, prefix: str, **policy: Any) -> ResponseCache:
    store = RedisStore(
        client,
        prefix=prefix,
        ttl_s=60,
        op_timeout_s=policy.pop("op_timeout_s", 0.5),
        breaker=CircuitBreaker(BreakerPolicy()),
    )
    return ResponseCache(store, ttl_s=60, coalesce_policy=CoalescePolicy(**policy))


@pytest.mark.redis
async def test_requests_across_two_workers_make_one_upstream_call(
    redis_prefix: str, redis_clients: ClientFactory
) -> None:
    workers = [redis_cache(redis_clients(), redis_prefix, poll_interval_s=0.01) for _ in range(2)]
    upstream = Upstream()
    outcomes: list[tuple[str, dict[str, Any]]] = []
    with anyio.fail_after(20):
        tasks = [asyncio.create_task(request(workers[i % 2], upstream, outcomes)) for i in range(N)]
        await until(lambda: upstream.calls == 1)
        # Give the other worker time to find the lock and start polling.
        await until(lambda: sum(w.metrics()["store_gets"] for w in workers) > N)
        upstream.gate.set()
        await asyncio.gather(*tasks)
    assert upstream.calls == 1
    assert sorted(role for role, _ in outcomes) == ["follower"] * (N - 1) + ["leader"]
    assert all(completion == answer() for _, completion in outcomes)


@pytest.mark.redis
async def test_a_dead_leader_releases_followers_after_the_lock_expires(
    redis_prefix: str, redis_clients: ClientFactory
) -> None:
    dead = redis_cache(redis_clients(), redis_prefix)
    assert (
        await dead.backend.acquire_lock(dead.key(BODY, namespace="t", model="m"), "dead", 0.3)
        is True
    )
    live = redis_cache(redis_clients(), redis_prefix, lock_ttl_s=0.3, poll_interval_s=0.02)
    with anyio.fail_after(5):
        async with live.flight(BODY, namespace="t", model="m") as flight:
            assert flight.answer is None
            assert flight.role == "leader"
            assert await flight.publish(answer("after the dead leader"))
    hit = await dead.lookup(BODY, namespace="t", model="m")
    assert hit is not None and hit.completion == answer("after the dead leader")


@pytest.mark.redis
async def test_a_slow_live_leader_keeps_its_lock(
    redis_prefix: str, redis_clients: ClientFactory
) -> None:
    leader_cache = redis_cache(redis_clients(), redis_prefix, lock_ttl_s=0.3)
    follower_cache = redis_cache(
        redis_clients(), redis_prefix, lock_ttl_s=0.3, poll_interval_s=0.02
    )
    entered = asyncio.Event()

    async def lead() -> None:
        async with leader_cache.flight(BODY, namespace="t", model="m") as flight:
            assert flight.role == "leader"
            entered.set()
            await asyncio.sleep(1.0)  # several lock lifetimes; the heartbeat extends it
            await flight.publish(answer("slow but alive"))

    with anyio.fail_after(10):
        leader = asyncio.create_task(lead())
        await entered.wait()
        async with follower_cache.flight(BODY, namespace="t", model="m") as flight:
            assert flight.role == "follower"
            assert flight.answer == answer("slow but alive")
        await leader


async def test_unreachable_redis_means_every_request_goes_alone_across_workers(
    redis_clients: ClientFactory,
) -> None:
    store = RedisStore(
        redis_clients(port=1),
        prefix="p:",
        ttl_s=60,
        breaker=CircuitBreaker(BreakerPolicy(failure_threshold=1)),
    )
    cache = ResponseCache(store, ttl_s=60)
    with anyio.fail_after(5):
        async with cache.flight(BODY, namespace="t", model="m") as flight:
            assert flight.role == "leader" and flight.answer is None
            assert not await flight.publish(answer())
    assert cache.metrics()["coalesce_lock_unavailable"] == 1


@pytest.mark.redis
async def test_a_failing_leader_in_one_worker_is_replaced_once_across_workers(
    redis_prefix: str, redis_clients: ClientFactory
) -> None:
    workers = [redis_cache(redis_clients(), redis_prefix, poll_interval_s=0.01) for _ in range(3)]
    entered, fail = asyncio.Event(), asyncio.Event()
    calls = 0

    async def lead_and_fail() -> None:
        nonlocal calls
        async with workers[0].flight(BODY, namespace="t", model="m") as flight:
            assert flight.role == "leader"
            calls += 1
            entered.set()
            await fail.wait()  # then leaves without an answer

    async def follow(worker: ResponseCache) -> str:
        nonlocal calls
        async with worker.flight(BODY, namespace="t", model="m") as flight:
            if flight.answer is not None:
                return flight.role
            calls += 1
            await asyncio.sleep(0.05)
            await flight.publish(answer("second round"))
            return flight.role

    with anyio.fail_after(20):
        leader = asyncio.create_task(lead_and_fail())
        await entered.wait()
        followers = [asyncio.create_task(follow(workers[1 + i % 2])) for i in range(N)]
        await until(lambda: sum(w.metrics()["store_gets"] for w in workers[1:]) > N)
        fail.set()
        await leader
        roles = await asyncio.gather(*followers)
    assert calls == 2
    assert sorted(roles) == ["follower"] * (N - 1) + ["leader"]


@pytest.mark.redis
async def test_an_uncacheable_answer_sends_remote_followers_upstream_at_once(
    redis_prefix: str, redis_clients: ClientFactory
) -> None:
    leader_cache = redis_cache(redis_clients(), redis_prefix)
    follower_cache = redis_cache(redis_clients(), redis_prefix, poll_interval_s=0.01)
    key = leader_cache.key(BODY, namespace="t", model="m")
    entered, done = asyncio.Event(), asyncio.Event()

    async def lead() -> None:
        async with leader_cache.flight(BODY, namespace="t", model="m") as flight:
            entered.set()
            await done.wait()
            assert not await flight.publish(answer(finish="length"))

    with anyio.fail_after(10):
        leader = asyncio.create_task(lead())
        await entered.wait()

        async def follow() -> bool:
            async with follower_cache.flight(BODY, namespace="t", model="m") as flight:
                assert flight.answer is None
                return await follower_cache.backend.lock_held(key)

        follower = asyncio.create_task(follow())
        await until(lambda: follower_cache.metrics()["store_gets"] > 1)
        done.set()
        await leader
        # Upstream at once, without taking the lock: other followers do not queue behind it.
        assert await follower is False
    assert follower_cache.metrics()["coalesce_takeovers"] == 0
