"""Fixtures for the routing tests: the anyio backend and a real Redis with a unique prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from routing.select import Candidate

REDIS_URL = "redis://127.0.0.1:6379/0"
DEV_DATA = Path(__file__).resolve().parents[2] / "routing" / "data" / "routing_dev.jsonl.gz"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def key_prefix() -> str:
    # The hash tag keeps multi-key scripts valid on Redis Cluster too.
    return f"test-routing:{{{uuid.uuid4().hex}}}:"


@pytest.fixture
async def redis_client(key_prefix: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    yield client
    keys = [k async for k in client.scan_iter(match=key_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _make_candidate(
    name: str,
    tier: str,
    *,
    provider: str = "openai",
    input_price: str = "1",
    cached_input_price: str | None = None,
    output_price: str = "4",
    context_window: int = 128_000,
    max_output: int = 16_000,
    tools: bool = True,
    vision: bool = True,
    json_schema: bool = True,
    reasoning: bool = False,
    available: bool = True,
) -> Candidate:
    """A candidate with sensible defaults; prices in USD per 1M tokens."""
    return Candidate(
        name=name,
        provider=provider,
        tier=tier,  # type: ignore[arg-type]
        context_window=context_window,
        max_output=max_output,
        supports_tools=tools,
        supports_vision=vision,
        supports_json_schema=json_schema,
        supports_reasoning=reasoning,
        input_price=Decimal(input_price),
        cached_input_price=Decimal(cached_input_price or input_price)
        / (1 if cached_input_price else 2),
        output_price=Decimal(output_price),
        available=available,
    )


@pytest.fixture
def make_candidate() -> Callable[..., Candidate]:
    """Factory of candidates (see ``_make_candidate``)."""
    return _make_candidate
