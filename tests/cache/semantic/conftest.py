"""Fixtures for the semantic cache tests: anyio backend, a real Redis, the WordLlama model."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from routing.embedding import TextEmbedder

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    """A client of the real server; fails under CI=true when it is unreachable."""
    client = Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"Redis at {REDIS_HOST}:{REDIS_PORT} unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"test-semcache-{uuid.uuid4().hex}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture(scope="session")
def text_embedder() -> TextEmbedder:
    """WordLlama's model from the installed wheel, loaded once for the session."""
    return TextEmbedder.load()
