"""RedisStore against real Redis servers: operations, timeouts, breaker, recovery."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from cache.redis_store import RedisStore
from cache.store import CacheStore
from routing.breaker import BreakerPolicy, BreakerState, CircuitBreaker

pytestmark = pytest.mark.anyio

REDIS_HOST = "127.0.0.1"
ClientFactory = Callable[..., aioredis.Redis]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: FakeClock | None = None, threshold: int = 2) -> CircuitBreaker:
    policy = BreakerPolicy(failure_threshold=threshold, open_s=5.0, half_open_probes=1)
    return CircuitBreaker(policy, clock=clock or FakeClock())


@pytest.mark.redis
async def test_get_set_delete_under_the_prefix(
    redis_prefix: str, redis_clients: ClientFactory, sync_redis: redis.Redis
) -> None:
    client = redis_clients()
    store = RedisStore(client, prefix=redis_prefix, ttl_s=60, breaker=breaker())
    assert isinstance(store, CacheStore)
    assert await store.get("k") is None
    assert await store.set("k", b"\x00value")
    assert await store.get("k") == b"\x00value"
    sync = sync_redis
    assert sync.get(redis_prefix + "k") == b"\x00value"
    assert 0 < sync.pttl(redis_prefix + "k") <= 60_000
    assert await store.set("short", b"v", 2.5)
    assert 0 < sync.pttl(redis_prefix + "short") <= 2_500
    await store.delete("k")
    assert await store.get("k") is None
    assert await store.ping()
    assert store.health().ok


@pytest.mark.redis
async def test_locks_belong_to_their_token(
    redis_prefix: str, redis_clients: ClientFactory, sync_redis: redis.Redis
) -> None:
    client = redis_clients()
    store = RedisStore(client, prefix=redis_prefix, ttl_s=60, breaker=breaker())
    assert await store.acquire_lock("k", "one", 5) is True
    assert await store.acquire_lock("k", "two", 5) is False
    assert await store.lock_held("k")
    await store.release_lock("k", "two")
    assert await store.lock_held("k")
    assert await store.extend_lock("k", "one", 30)
    assert not await store.extend_lock("k", "two", 30)
    assert sync_redis.pttl(redis_prefix + "lock:k") > 5_000
    await store.release_lock("k", "one")
    assert not await store.lock_held("k")


async def test_unreachable_redis_gives_misses_and_opens_the_breaker(
    redis_clients: ClientFactory,
) -> None:
    client = redis_clients(port=1)
    clock = FakeClock()
    store = RedisStore(client, prefix="p:", ttl_s=60, breaker=breaker(clock))
    assert await store.get("k") is None
    assert not await store.set("k", b"v")
    assert store.breaker_state is BreakerState.OPEN
    assert not store.health().ok
    assert await store.acquire_lock("k", "t", 1) is None
    assert not await store.lock_held("k")
    assert not await store.extend_lock("k", "t", 1)
    await store.release_lock("k", "t")
    await store.delete("k")
    assert not await store.ping()
    assert store.stats.errors == 2
    assert store.stats.rejected >= 6


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, REDIS_HOST, 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_hanging_redis_times_out_into_a_miss(
    silent_server: int, redis_clients: ClientFactory
) -> None:
    client = redis_clients(port=silent_server)
    store = RedisStore(
        client, prefix="p:", ttl_s=60, op_timeout_s=0.05, breaker=breaker(threshold=5)
    )
    assert await store.get("k") is None
    assert await store.acquire_lock("k", "t", 1) is None
    assert store.stats.timeouts == 2
    assert store.breaker_state is BreakerState.CLOSED


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((REDIS_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A throwaway redis-server without persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                REDIS_HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(host=REDIS_HOST, port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        probe.close()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    process = RedisProcess(_free_port())
    process.start()
    yield process
    process.stop()


async def test_breaker_opens_when_redis_dies_and_closes_when_it_returns(
    redis_process: RedisProcess, redis_clients: ClientFactory
) -> None:
    client = redis_clients(port=redis_process.port)
    clock = FakeClock()
    store = RedisStore(client, prefix="p:", ttl_s=60, op_timeout_s=0.5, breaker=breaker(clock))
    assert await store.set("k", b"v")
    assert await store.get("k") == b"v"

    redis_process.stop()
    assert await store.get("k") is None
    assert await store.get("k") is None
    assert store.breaker_state is BreakerState.OPEN
    errors = store.stats.errors
    assert await store.get("k") is None
    assert store.stats.errors == errors  # refused by the breaker, Redis not asked
    assert store.stats.rejected == 1

    redis_process.start()
    assert await store.get("k") is None  # still open: no traffic until the window ends
    clock.now += 5.0
    assert store.health().breaker == "half_open"
    assert await store.set("k", b"again")  # the probe succeeds and closes the breaker
    assert store.health().breaker == "closed"
    assert await store.get("k") == b"again"
    assert store.health().ok


async def test_a_cancelled_call_does_not_count_against_a_closed_breaker(
    silent_server: int, redis_clients: ClientFactory
) -> None:
    clock = FakeClock()
    store = RedisStore(
        redis_clients(port=silent_server),
        prefix="p:",
        ttl_s=60,
        op_timeout_s=30,
        breaker=breaker(clock, threshold=1),
    )
    pending = asyncio.create_task(store.get("k"))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert store.health().breaker == "closed"


async def test_a_cancelled_half_open_probe_reopens_instead_of_sticking(
    silent_server: int, redis_clients: ClientFactory
) -> None:
    clock = FakeClock()
    guard = breaker(clock, threshold=1)
    guard.record_failure()
    store = RedisStore(
        redis_clients(port=silent_server), prefix="p:", ttl_s=60, op_timeout_s=30, breaker=guard
    )
    assert store.health().breaker == "open"
    clock.now += 5.0
    pending = asyncio.create_task(store.get("k"))  # takes the only half-open probe, then hangs
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert store.health().breaker == "open"
    clock.now += 5.0
    assert store.health().breaker == "half_open"
