"""Two deployments with different ``cache.redis_prefix`` share one Redis without touching each other.

Both run the same config (same tenant, key, budget and model names) but for
the prefix. Deployment A caches an answer, spends budget, counts a rate
limit, opens a circuit-breaker record and counts a wrong admin key; every key
it writes is under its prefix, and B neither sees nor changes any of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis

from tests.e2e_security.harness import (
    ADMIN_KEY,
    SPENDER_KEY,
    Proxy,
    drop_keys,
    main_config,
    require_redis,
)
from tests.support.servers import ProxyLaunch, Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

KINDS = ("cache:", "{budgets}:", "breaker:", "ratelimit:", "login:")


@pytest.fixture
def deployments(sim: Simulator, uid: str, tmp_path: Path) -> Iterator[dict[str, Proxy]]:
    redis_url = require_redis()
    launches = {}
    for name in ("a", "b"):
        cache = {"backend": "redis", "redis_url": redis_url, "redis_prefix": f"e2e-{name}-{uid}:"}
        auth = {
            "admin_key": ADMIN_KEY,
            "keys": [{"key": SPENDER_KEY, "tenant": f"spender-{uid}", "rpm": 100}],
        }
        config = main_config(sim, tmp_path / name, uid, cache=cache, auth=auth)
        launches[name] = ProxyLaunch(config, tmp_path / name, kind=Proxy, name=name)
    try:
        yield {name: launch.wait() for name, launch in launches.items()}
    finally:
        for launch in launches.values():
            launch.stop()
        drop_keys(f"e2e-a-{uid}:*")
        drop_keys(f"e2e-b-{uid}:*")


def keys(client: redis.Redis, pattern: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=pattern, count=1000)}


def traffic(proxy: Proxy, sim: Simulator, uid: str, prompt: str) -> str:
    """Cache, budget, rate limit, breaker and login keys; the cache status of ``prompt``."""
    with proxy.client(SPENDER_KEY) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="metered", messages=[{"role": "user", "content": prompt}], max_tokens=5
        )
        sim.arm("500", count=2, model=f"chat-{uid}")  # both attempts fail: a breaker record
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=5
            )
    wrong = httpx.post(
        f"{proxy.base_url}/dashboard/login", data={"key": "guess", "next": "/"}, timeout=10.0
    )
    assert wrong.status_code == 401
    return str(raw.headers["x-spendgate-cache"])


def used(proxy: Proxy, uid: str) -> str:
    answer = httpx.get(
        f"{proxy.base_url}/admin/budgets",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10.0,
    )
    [budget] = [b for b in answer.json()["budgets"] if b["name"] == f"daily-{uid}"]
    return str(budget["used_usd"])


def test_two_deployments_share_one_redis_without_touching_each_others_keys(
    deployments: dict[str, Proxy], fresh_sim: Simulator, uid: str
) -> None:
    a, b = deployments["a"], deployments["b"]
    prefix_a, prefix_b = f"e2e-a-{uid}:", f"e2e-b-{uid}:"
    client = redis.Redis.from_url(require_redis())
    try:
        assert traffic(a, fresh_sim, uid, f"Hello from A [{uid}]") == "miss"
        written_by_a = keys(client, prefix_a + "*")
        for kind in KINDS:
            assert any(k.startswith(prefix_a + kind) for k in written_by_a), (kind, written_by_a)
        assert keys(client, prefix_b + "*") == set()  # B untouched
        # Nothing of this run under the default prefix, where a third deployment would live.
        assert keys(client, f"spendgate:*{uid}*") == set()
        # What lasts (not the short-lived lock, marker and login counter): it must not change.
        lasting = [
            k for k in written_by_a if not any(t in k for t in ("login:", "nostore:", "lock:"))
        ]
        snapshot_a = {k: client.dump(k) for k in lasting}
        assert used(b, uid) == "0.000000" and used(a, uid) == "0.000500"

        # The same request on B is B's own: a cache miss, B's own budget, B's own keys.
        assert traffic(b, fresh_sim, uid, f"Hello from A [{uid}]") == "miss"
        written_by_b = keys(client, prefix_b + "*")
        for kind in KINDS:
            assert any(k.startswith(prefix_b + kind) for k in written_by_b), (kind, written_by_b)
        assert used(b, uid) == "0.000500" and used(a, uid) == "0.000500"
        # A's keys are exactly as they were: B wrote none of them.
        assert {k: client.dump(k) for k in snapshot_a} == snapshot_a
    finally:
        client.close()
