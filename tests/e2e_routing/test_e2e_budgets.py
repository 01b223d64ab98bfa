"""Budgets across two worker processes sharing Redis.

A tenant gets a small daily budget; requests of a known price (gpt-4o-mini at
its catalog price, the simulator's usage) are fired concurrently at
``serve --workers 2``. Reservations are atomic in Redis, so once the budget is
spent requests get 429 ``budget_exceeded``, and the ledger's total cost passes
the limit by at most one request's estimate. ``GET /admin/budgets`` reports
the same usage.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.e2e_routing.doubles import SlowLink
from tests.e2e_routing.harness import (
    ADMIN_KEY,
    SIM_KEY,
    Launch,
    Proxy,
    ledger_url,
    tag,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e

LIMIT_USD = Decimal("0.003")
LIMIT_MICRO = int(LIMIT_USD * 1_000_000)
MAX_TOKENS = 50
REQUESTS = 20
# About 2,000 prompt tokens: some 300 micro-dollars at gpt-4o-mini's $0.15 per 1M.
FILLER = " ".join(f"Line {i} of the report says the shipment arrived on time." for i in range(160))


@pytest.fixture
def run(redis_url: str) -> Iterator[str]:
    """A run tag for tenant and model names; the run's Redis keys are dropped at teardown."""
    uid = tag()
    yield uid
    client = redis.Redis.from_url(redis_url)
    try:
        # cache.prefix alone puts every key of the proxy under it, budgets included.
        keys = list(client.scan_iter(match=f"e2e-budgets-{uid}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def budget_config(
    uid: str, sim: Simulator, workdir: Path, redis_url: str, *, redis_timeout_ms: int = 2000
) -> dict[str, Any]:
    """One model, one tenant key, one daily budget; Redis for cache, breakers and budgets.

    The Redis client's socket timeout is ``cache.lookup_timeout_ms`` for budgets
    too; a loaded test machine can exceed the 50 ms default, so it is raised
    here (the default's effect has its own test below).
    """
    return {
        "providers": {"p1": {"type": "openai", "base_url": sim.openai_base_url, "api_key": SIM_KEY}},
        "models": [{"name": "gpt-4o-mini", "provider": "p1", "upstream": f"mini-{uid}", "tier": "small"}],
        "auth": {"admin_key": ADMIN_KEY, "keys": [{"key": f"key-{uid}", "tenant": f"team-{uid}"}]},
        "budgets": [{"name": f"daily-{uid}", "tenant": f"team-{uid}", "period": "day", "limit_usd": str(LIMIT_USD)}],
        "routing": {"retry_base_s": 0.01, "breaker_failures": 1000},
        "cache": {
            "enabled": False,
            "backend": "redis",
            "redis_url": redis_url,
            "prefix": f"e2e-budgets-{uid}:",
            "lookup_timeout_ms": redis_timeout_ms,
        },
        "ledger": {"url": ledger_url(workdir)},
    }  # fmt: skip


def one_request(base_url: str, key: str, n: int) -> Any:
    """The raw response, or the SDK's error for a refused request."""
    with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60) as client:
        try:
            return client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Request {n}. {FILLER}"}],
                max_tokens=MAX_TOKENS,
            )
        except openai.APIStatusError as exc:
            return exc


def settled_budget(proxy: Proxy, name: str, spent: int) -> dict[str, Any]:
    """Budget ``name`` from /admin/budgets once settling has caught up with ``spent``."""
    deadline = time.monotonic() + 5.0
    while True:
        budgets = [b for b in proxy.budgets() if b["name"] == name]
        assert len(budgets) == 1, budgets
        if micro(budgets[0]["used_usd"]) == spent or time.monotonic() > deadline:
            return budgets[0]
        time.sleep(0.1)


def micro(usd: str) -> int:
    return int(Decimal(usd) * 1_000_000)


def test_a_tenant_budget_holds_across_two_workers_sharing_redis(
    launch: Launch, s1: Simulator, tmp_path: Path, run: str, redis_url: str
) -> None:
    proxy = launch(budget_config(run, s1, tmp_path, redis_url), workers=2)
    key = f"key-{run}"

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(
            pool.map(lambda n: one_request(proxy.openai_base_url, key, n), range(REQUESTS))
        )
    # Settled reservations free what estimates over-held: keep going until refused.
    for n in range(REQUESTS, REQUESTS + 20):
        results.append(one_request(proxy.openai_base_url, key, n))
        if isinstance(results[-1], openai.APIStatusError):
            break

    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert served and refused
    estimates = []
    for error in refused:
        assert error.status_code == 429
        assert isinstance(error, openai.RateLimitError)
        assert error.type == "budget_exceeded"
        assert f"budget 'daily-{run}'" in error.message
        found = re.search(
            r"remaining \$([0-9.]+), this request needs about \$([0-9.]+)", error.message
        )
        assert found, error.message
        assert 0 <= micro(found.group(1)) < LIMIT_MICRO
        estimates.append(micro(found.group(2)))
    assert s1.calls(f"mini-{run}") == len(served)

    spent = sum(micro(r.headers["x-spendgate-cost-usd"]) for r in served)
    budget = settled_budget(proxy, f"daily-{run}", spent)
    assert budget["subject"] == f"tenant=team-{run}"
    assert micro(budget["limit_usd"]) == LIMIT_MICRO
    assert micro(budget["used_usd"]) == spent
    assert micro(budget["remaining_usd"]) == max(0, LIMIT_MICRO - spent)

    ids = [r.headers["x-spendgate-request-id"] for r in served]
    proxy.stop()
    rows = [r for r in proxy.rows() if r.tenant == f"team-{run}"]
    assert len(rows) == len(results)
    served_costs = {r.request_id: r.cost for r in rows if r.request_id in set(ids)}
    assert len(served_costs) == len(ids)
    assert all(cost is not None and cost > 0 for cost in served_costs.values())
    total = sum(r.cost or 0 for r in rows)
    assert total == spent
    assert total <= LIMIT_MICRO + max(estimates), (total, LIMIT_MICRO, max(estimates))
    assert all(
        r.http_status == 429 and r.error_type == "budget_exceeded"
        for r in rows
        if r.request_id not in set(ids)
    )


def test_a_budget_still_holds_when_redis_is_100_ms_away(
    launch: Launch, s1: Simulator, tmp_path: Path, run: str, redis_url: str
) -> None:
    """With the default ``cache.lookup_timeout_ms`` (50 ms), as a deployment would run it.

    Budget reservations go through the cache's Redis client, whose socket
    timeout is the cache lookup timeout, and fail open: a Redis slower than
    that is treated as down and every request runs unmetered.
    """
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    link = SlowLink((host, int(port)), delay_s=0.1)
    try:
        config = budget_config(run, s1, tmp_path, f"redis://127.0.0.1:{link.port}/0")
        del config["cache"]["lookup_timeout_ms"]
        proxy = launch(config)
        results = [one_request(proxy.openai_base_url, f"key-{run}", n) for n in range(15)]
        proxy.stop()
    finally:
        link.close()

    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    costs = [micro(r.headers["x-spendgate-cost-usd"]) for r in served]
    assert sum(costs) <= LIMIT_MICRO + max(costs), (
        f"{len(served)} of {len(results)} requests served for ${Decimal(sum(costs)) / 10**6} "
        f"against a ${LIMIT_USD} budget"
    )
