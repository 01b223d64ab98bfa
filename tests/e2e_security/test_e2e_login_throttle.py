"""Guessing the admin key at /dashboard/login: the sixth wrong key within a minute gets 429.

The proxy runs two workers sharing the Redis counters, so the attempts are
counted together whichever worker takes each connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e_security.harness import ADMIN_KEY, Proxy, drop_keys, main_config, require_redis
from tests.support.servers import Simulator, start_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def login(proxy: Proxy, key: str) -> httpx.Response:
    # A fresh connection each time: with two workers, either may answer.
    return httpx.post(
        f"{proxy.base_url}/dashboard/login",
        data={"key": key, "next": "/dashboard"},
        timeout=10.0,
    )


def test_the_sixth_wrong_admin_key_within_a_minute_gets_429(
    sim: Simulator, uid: str, tmp_path: Path
) -> None:
    redis_url = require_redis()
    prefix = f"e2e-login-{uid}:"
    cache = {"backend": "redis", "redis_url": redis_url, "redis_prefix": prefix}
    proxy = start_proxy(
        main_config(sim, tmp_path, uid, cache=cache), tmp_path, kind=Proxy, workers=2
    )
    try:
        assert login(proxy, ADMIN_KEY).status_code == 303  # the right key, not slowed
        started = time.monotonic()
        for i in range(5):
            wrong = login(proxy, f"guess-{i}")
            assert wrong.status_code == 401, (i, wrong.text)
        # Counted in Redis, where every worker (and replica) reads them.
        counter = redis.Redis.from_url(redis_url)
        try:
            assert counter.get(f"{prefix}login:127.0.0.1") == b"5"
        finally:
            counter.close()
        sixth = login(proxy, "guess-5")
        assert time.monotonic() - started < 60
        assert sixth.status_code == 429
        assert 1 <= int(sixth.headers["retry-after"]) <= 60
        assert "too many wrong admin keys" in sixth.text
        # Until the minute is over, the right key waits too: otherwise a guesser learns it won.
        assert login(proxy, ADMIN_KEY).status_code == 429
        bearer = httpx.get(
            f"{proxy.base_url}/admin/budgets",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10.0,
        )
        assert bearer.status_code == 429
        assert bearer.json()["error"]["code"] == "login_throttled"
    finally:
        proxy.stop()
        drop_keys(prefix + "*")


def wrong_logins_from(proxy: Proxy, forwarded_for: str, count: int) -> list[int]:
    return [
        httpx.post(
            f"{proxy.base_url}/dashboard/login",
            data={"key": f"guess-{i}", "next": "/dashboard"},
            headers={"x-forwarded-for": forwarded_for},
            timeout=10.0,
        ).status_code
        for i in range(count)
    ]


@pytest.mark.parametrize("trusted", [True, False])
def test_clients_behind_a_trusted_reverse_proxy_are_counted_apart(
    sim: Simulator, uid: str, tmp_path: Path, trusted: bool
) -> None:
    # This test's client is the "reverse proxy" (127.0.0.1), naming clients in X-Forwarded-For.
    server = {"forwarded_allow_ips": ["127.0.0.1", "::1"] if trusted else []}
    proxy = start_proxy(main_config(sim, tmp_path, uid, server=server), tmp_path, kind=Proxy)
    try:
        assert wrong_logins_from(proxy, "203.0.113.7", 5) == [401] * 5
        other_client = wrong_logins_from(proxy, "203.0.113.8", 1)
        same_client = wrong_logins_from(proxy, "203.0.113.7", 1)
    finally:
        proxy.stop()
    if trusted:  # each client has its own count
        assert (other_client, same_client) == ([401], [429])
    else:  # a header from an untrusted peer is ignored: one count, the peer's
        assert (other_client, same_client) == ([429], [429])
