"""Admin-key guessing is throttled: 5 wrong keys a minute per address, then 429."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.errors import RateLimitError
from proxy.ops.login_throttle import LoginThrottle
from proxy.server.app import create_app
from proxy.settings import Settings, parse_config

pytestmark = pytest.mark.anyio

ADMIN = "admin-secret-key"
REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    yield client
    await client.aclose()


async def locked_out(throttle: LoginThrottle, address: str) -> RateLimitError | None:
    try:
        await throttle.check(address)
    except RateLimitError as exc:
        return exc
    return None


async def test_the_sixth_attempt_within_the_minute_is_refused_until_it_ends() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        assert await locked_out(throttle, "10.0.0.1") is None
        await throttle.failed("10.0.0.1")
        clock.now += 5
    refused = await locked_out(throttle, "10.0.0.1")
    assert refused is not None and refused.http_status == 429
    assert refused.headers["retry-after"] == "35"  # the window opened 25 s ago
    assert await locked_out(throttle, "10.0.0.2") is None  # other addresses are not touched
    clock.now += 35
    assert await locked_out(throttle, "10.0.0.1") is None


async def test_a_success_clears_the_count() -> None:
    throttle = LoginThrottle(clock=Clock())
    for _ in range(4):
        await throttle.failed("a")
    await throttle.succeeded("a")
    for _ in range(4):
        await throttle.failed("a")
    assert await locked_out(throttle, "a") is None


async def test_memory_stays_bounded_under_many_addresses() -> None:
    throttle = LoginThrottle(clock=Clock())
    for i in range(10_050):
        await throttle.failed(f"addr-{i}")
    assert len(throttle._local) == 10_000


async def test_counts_are_shared_through_redis(redis_client: Redis) -> None:
    prefix = f"test-login:{uuid.uuid4().hex}:"
    one = LoginThrottle(redis=redis_client, prefix=prefix)
    two = LoginThrottle(redis=redis_client, prefix=prefix)
    try:
        for replica in (one, two, one, two, one):
            await replica.failed("192.0.2.7")
        refused = await locked_out(two, "192.0.2.7")
        assert refused is not None
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert 0 < await redis_client.ttl(prefix + "192.0.2.7") <= 60
    finally:
        await redis_client.delete(prefix + "192.0.2.7")


async def test_a_dead_redis_still_throttles_in_memory() -> None:
    dead: Redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    throttle = LoginThrottle(redis=dead, prefix="unused:")
    try:
        for _ in range(5):
            await throttle.failed("a")
        assert await locked_out(throttle, "a") is not None
    finally:
        await dead.aclose()


def settings(tmp_path: Path) -> Settings:
    data: dict[str, Any] = {
        "providers": {"openai": {"type": "openai", "base_url": "https://x.test/v1"}},
        "models": [{"name": "gpt-4o", "provider": "openai", "tier": "large"}],
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "auth": {"admin_key": ADMIN},
    }
    return Settings(parse_config(data, known_provider_types=("openai",)), "test")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    asgi = create_app(settings(tmp_path))
    async with asgi.router.lifespan_context(asgi):
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
            yield http


async def login(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.post("/dashboard/login", data={"key": key, "next": "/dashboard"})


async def test_the_login_form_and_admin_bearer_share_one_throttle(
    client: httpx.AsyncClient,
) -> None:
    assert (await login(client, ADMIN)).status_code == 303  # no failures: straight in
    for i in range(3):
        assert (await login(client, f"guess-{i}")).status_code == 401
    for i in range(2):
        bad = {"authorization": f"Bearer guess-{i}"}
        assert (await client.get("/admin/budgets", headers=bad)).status_code == 401
    sixth = await login(client, "guess-6")
    assert sixth.status_code == 429
    assert 1 <= int(sixth.headers["retry-after"]) <= 60
    assert "too many wrong admin keys" in sixth.text
    # Even the right key waits: a different answer would confirm a guess.
    assert (await login(client, ADMIN)).status_code == 429
    refused = await client.get("/admin/budgets", headers={"authorization": f"Bearer {ADMIN}"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "login_throttled"
