"""Fixtures for the response-cache tests: real Redis servers, unique key prefixes."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379

ClientFactory = Callable[..., aioredis.Redis]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _require_redis() -> None:
    try:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix on the shared Redis that no other test uses; cleaned up afterwards."""
    _require_redis()
    prefix = f"test:cache:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def sync_redis() -> Iterator[redis.Redis]:
    """A plain client on the shared Redis, for checking what a store wrote."""
    _require_redis()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    yield client
    client.close()


@pytest.fixture
async def redis_clients() -> AsyncIterator[ClientFactory]:
    """Makes asyncio clients (default: the shared Redis) that fail fast; closes them after."""
    made: list[aioredis.Redis] = []

    def make(port: int = REDIS_PORT) -> aioredis.Redis:
        client = aioredis.Redis(
            host=REDIS_HOST, port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
