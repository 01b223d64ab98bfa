"""Circuit breakers: the state machine, the registry, and state shared through Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from routing.breaker import (
    BreakerPolicy,
    BreakerRegistry,
    CircuitBreaker,
    breaker_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> str:
    return breaker.state.value


POLICY = BreakerPolicy(failure_threshold=3, open_s=30.0, half_open_probes=1)


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = Clock()
    b = CircuitBreaker(POLICY, clock=clock)
    for _ in range(2):
        b.record_failure()
    assert state_of(b) == "closed"
    b.record_failure()
    assert state_of(b) == "open"
    assert not b.allow()
    clock.now += 30
    assert state_of(b) == "half_open"
    assert b.allow()
    assert not b.allow()  # one probe only
    b.record_failure()
    assert state_of(b) == "open"
    clock.now += 30
    assert b.allow()
    b.record_success()
    assert state_of(b) == "closed"


@pytest.mark.anyio
async def test_memory_registry_tracks_each_key() -> None:
    clock = Clock()
    reg = BreakerRegistry(POLICY, clock=clock)
    key = breaker_key("openai", "gpt-4o")
    assert key == "openai/gpt-4o"
    for _ in range(3):
        assert await reg.allow(key)
        await reg.record_failure(key)
    await reg.record_success("anthropic/claude")
    assert reg.states() == {"anthropic/claude": "closed", "openai/gpt-4o": "open"}
    assert not reg.available(key)
    assert not await reg.allow(key)
    clock.now += 31
    assert reg.states()[key] == "half_open"
    assert reg.available(key)
    assert await reg.allow(key)
    assert not await reg.allow(key)
    await reg.record_success(key)
    assert reg.states()[key] == "closed"


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_state_is_shared_between_registries(
    redis_client: Redis, key_prefix: str
) -> None:
    clock = Clock()
    one = BreakerRegistry(POLICY, redis=redis_client, key_prefix=key_prefix, clock=clock)
    two = BreakerRegistry(POLICY, redis=redis_client, key_prefix=key_prefix, clock=clock)
    key = "openai/gpt-4o"
    await one.record_failure(key)
    await two.record_failure(key)
    assert await two.allow(key)
    await one.record_failure(key)  # third failure across replicas: open for everyone
    assert one.states() == {key: "open"}
    assert not await two.allow(key)
    assert two.states() == {key: "open"}
    ttl = await redis_client.ttl(key_prefix + key)
    assert 0 < ttl <= 600
    clock.now += 30
    assert await one.allow(key)  # the single half-open probe, taken by replica one
    assert not await two.allow(key)
    assert two.states() == {key: "half_open"}
    await two.record_failure(key)  # probe failed: open again everywhere
    assert not await one.allow(key)
    clock.now += 30
    assert await two.allow(key)
    await two.record_success(key)
    assert await one.allow(key)
    assert one.states() == {key: "closed"}


@pytest.mark.anyio
async def test_redis_errors_fall_back_to_local_state() -> None:
    clock = Clock()
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    try:
        reg = BreakerRegistry(POLICY, redis=dead, key_prefix="unused:", clock=clock)
        key = "openai/gpt-4o"
        assert await reg.allow(key)
        for _ in range(3):
            await reg.record_failure(key)
        assert not await reg.allow(key)
        assert reg.states() == {key: "open"}
        await reg.record_success(key)
        assert await reg.allow(key)
    finally:
        await dead.aclose()
