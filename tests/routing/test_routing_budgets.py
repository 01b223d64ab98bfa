"""Budgets: config, scopes and windows, reservations, and no overspend under concurrency."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from proxy.errors import BudgetExceededError, ConfigError, SpendgateError
from routing.budgets import (
    Budget,
    BudgetContext,
    BudgetLedger,
    MemoryBudgetLedger,
    budgets_from_config,
)
from routing.budgets_redis import RedisBudgetLedger

REDIS_URL = "redis://127.0.0.1:6379/0"
CONFIG: list[dict[str, Any]] = [
    {"tenant": "team-b", "period": "day", "limit_usd": 50},
    {"workflow": "nightly-report", "period": "month", "limit_usd": 200},
    {"agent": "researcher", "tenant": "team-a", "period": "day", "limit_usd": 5},
    {"workflow": "*", "period": "run", "limit_usd": 2},
    {"key_id": "key-7", "period": "hour", "limit_usd": "0.10", "name": "key-7 hourly"},
]


class Now:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def test_config_parses_limits_exactly_to_micro_dollars() -> None:
    budgets = budgets_from_config(CONFIG)
    assert [b.limit_micro for b in budgets] == [
        50_000_000,
        200_000_000,
        5_000_000,
        2_000_000,
        100_000,
    ]
    assert budgets[2].scope == (("agent", "researcher"), ("tenant", "team-a"))
    assert budgets[0].name == "tenant=team-b/day"
    assert budgets[4].name == "key-7 hourly"
    # float config values go through str(): 0.1 is exactly 100_000 micro-dollars
    assert (
        Budget.from_config({"tenant": "t", "period": "day", "limit_usd": 0.1}).limit_micro
        == 100_000
    )
    assert (
        Budget.from_config({"tenant": "t", "period": "day", "limit_usd": 1.1}).limit_micro
        == 1_100_000
    )


def test_config_reports_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        budgets_from_config(
            [
                {"period": "day", "limit_usd": 1},
                {"tenant": "t", "period": "year", "limit_usd": -1, "colour": "red"},
            ]
        )
    assert info.value.problems == [
        "budgets[0]: needs one of tenant, key_id, workflow, agent",
        "budgets[1].period: one of hour, day, month, run",
        "budgets[1].limit_usd: a non-negative amount in USD",
        "budgets[1]: unknown keys colour",
    ]


def test_scopes_and_windows() -> None:
    team_b, nightly, researcher, per_run, key7 = budgets_from_config(CONFIG)
    now = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    ctx = BudgetContext(
        tenant="team-a", agent="researcher", workflow="etl", run_id="r1", key_id="key-7"
    )
    assert team_b.subject(ctx) is None
    assert researcher.subject(ctx) == "agent=researcher,tenant=team-a"
    assert per_run.subject(ctx) == "workflow=etl"
    assert per_run.window(ctx, now) == "r1"
    assert per_run.window(BudgetContext("team-a", workflow="etl"), now) is None
    assert researcher.window(ctx, now) == "2026-11-27"
    assert nightly.window(ctx, now) == "2026-11"
    assert key7.window(ctx, now) == "2026-11-27T23"


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def ledger_factory(
    request: pytest.FixtureRequest, now: Now, key_prefix: str
) -> Callable[[list[Budget]], BudgetLedger]:
    if request.param == "memory":
        return lambda budgets: MemoryBudgetLedger(budgets, now=now)
    client: Redis = request.getfixturevalue("redis_client")
    return lambda budgets: RedisBudgetLedger(budgets, redis=client, key_prefix=key_prefix, now=now)


@pytest.mark.anyio
async def test_reserve_commit_release_and_limit(
    ledger_factory: Callable[[list[Budget]], BudgetLedger], now: Now
) -> None:
    ledger = ledger_factory(budgets_from_config(CONFIG))
    ctx = BudgetContext(tenant="team-a", agent="researcher")
    r1 = await ledger.reserve(ctx, 3_000_000)
    await ledger.commit(r1, 2_500_000)
    await ledger.check(ctx, 2_500_000)
    with pytest.raises(BudgetExceededError) as info:
        await ledger.check(ctx, 2_500_001)
    assert "budget 'agent=researcher,tenant=team-a/day'" in info.value.message
    assert "remaining $2.5," in info.value.message
    assert info.value.status == 429 and info.value.type == "budget_exceeded"
    r2 = await ledger.reserve(ctx, 2_000_000)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve(ctx, 600_000)
    await ledger.release(r2)
    usage = {u.name: u for u in await ledger.usage()}
    row = usage["agent=researcher,tenant=team-a/day"]
    assert (row.used_micro, row.remaining_micro, row.window) == (2_500_000, 2_500_000, "2026-11-27")
    # untouched fixed-scope budgets are listed with nothing used
    assert usage["tenant=team-b/day"].used_micro == 0
    # a new UTC day starts from zero
    now.at += timedelta(hours=1)
    await ledger.reserve(ctx, 5_000_000)


@pytest.mark.anyio
async def test_rejection_reserves_nothing_anywhere(
    ledger_factory: Callable[[list[Budget]], BudgetLedger],
) -> None:
    ledger = ledger_factory(budgets_from_config(CONFIG))
    ctx = BudgetContext(tenant="team-a", agent="researcher", workflow="etl", run_id="run-1")
    await ledger.reserve(ctx, 1_500_000)  # run budget: 2 USD, researcher: 5 USD
    with pytest.raises(BudgetExceededError) as info:
        await ledger.reserve(ctx, 1_000_000)
    assert "budget 'workflow=*/run' (run run-1)" in info.value.message
    usage = {(u.name, u.subject): u.used_micro for u in await ledger.usage()}
    assert (
        usage[("agent=researcher,tenant=team-a/day", "agent=researcher,tenant=team-a")] == 1_500_000
    )
    assert usage[("workflow=*/run", "workflow=etl")] == 1_500_000
    # another run of the same workflow has its own counter
    await ledger.reserve(BudgetContext(tenant="team-c", workflow="etl", run_id="run-2"), 1_900_000)


@pytest.mark.anyio
async def test_concurrent_reserves_in_memory_never_overspend(now: Now) -> None:
    ledger = MemoryBudgetLedger(budgets_from_config(CONFIG), now=now)
    ctx = BudgetContext(tenant="team-b")

    async def one() -> bool:
        try:
            reservation = await ledger.reserve(ctx, 700_000)
        except BudgetExceededError:
            return False
        await asyncio.sleep(0)
        await ledger.commit(reservation, 700_000)
        return True

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert sum(results) == 50_000_000 // 700_000
    used = {u.name: u.used_micro for u in await ledger.usage()}["tenant=team-b/day"]
    assert used <= 50_000_000


@pytest.mark.redis
@pytest.mark.anyio
async def test_concurrent_reserves_from_two_redis_clients(
    redis_client: Redis, key_prefix: str, now: Now
) -> None:
    budgets = budgets_from_config([{"tenant": "t", "period": "day", "limit_usd": "0.001"}])
    clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    try:
        ledgers = [
            RedisBudgetLedger(budgets, redis=c, key_prefix=key_prefix, now=now) for c in clients
        ]

        async def one(ledger: RedisBudgetLedger) -> bool:
            try:
                reservation = await ledger.reserve(BudgetContext("t"), 30)
            except BudgetExceededError:
                return False
            await ledger.commit(reservation, 30)
            return True

        results = await asyncio.gather(*(one(ledgers[i % 2]) for i in range(120)))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(results) == 1000 // 30
    [row] = await RedisBudgetLedger(
        budgets, redis=redis_client, key_prefix=key_prefix, now=now
    ).usage()
    assert row.used_micro == 30 * (1000 // 30)


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from redis.asyncio import Redis
    from proxy.errors import BudgetExceededError
    from routing.budgets import BudgetContext, budgets_from_config
    from routing.budgets_redis import RedisBudgetLedger

    async def main(prefix: str) -> None:
        budgets = budgets_from_config([{"tenant": "t", "period": "day", "limit_usd": "0.0005"}])
        client = Redis.from_url(sys.argv[2])
        ledger = RedisBudgetLedger(budgets, redis=client, key_prefix=prefix)

        async def one() -> bool:
            try:
                reservation = await ledger.reserve(BudgetContext("t"), 7)
            except BudgetExceededError:
                return False
            await ledger.commit(reservation, 7)
            return True

        results = await asyncio.gather(*(one() for _ in range(60)))
        await client.aclose()
        print(sum(results))

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_processes_sharing_redis_never_overspend(
    redis_client: Redis, key_prefix: str
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, key_prefix, REDIS_URL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    granted = [int(out) for out, _ in outputs]
    assert sum(granted) == 500 // 7
    budgets = budgets_from_config([{"tenant": "t", "period": "day", "limit_usd": "0.0005"}])
    [row] = await RedisBudgetLedger(budgets, redis=redis_client, key_prefix=key_prefix).usage()
    assert row.used_micro == 7 * (500 // 7) <= 500


@pytest.mark.anyio
async def test_redis_outage_fails_open_or_closed_as_configured(now: Now) -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    budgets = budgets_from_config(CONFIG)
    ctx = BudgetContext(tenant="team-b")
    try:
        open_ledger = RedisBudgetLedger(budgets, redis=dead, key_prefix="unused:", now=now)
        reservation = await open_ledger.reserve(ctx, 10**12)
        assert reservation.charges == ()
        await open_ledger.check(ctx, 10**12)
        await open_ledger.commit(reservation, 5)
        closed = RedisBudgetLedger(
            budgets, redis=dead, key_prefix="unused:", fail_open=False, now=now
        )
        with pytest.raises(SpendgateError, match="budget ledger unavailable during reserve"):
            await closed.reserve(ctx, 1)
    finally:
        await dead.aclose()


@pytest.mark.anyio
async def test_memory_ledger_forgets_expired_counters(now: Now) -> None:
    ledger = MemoryBudgetLedger(budgets_from_config(CONFIG), now=now)
    for i in range(1100):
        await ledger.reserve(BudgetContext("t", workflow="w", run_id=f"run-{i}"), 1)
    assert sum(u.period == "run" for u in await ledger.usage()) == 1100
    now.at += timedelta(days=8)
    await ledger.reserve(BudgetContext("t", workflow="w", run_id="late"), 1)
    runs = [u for u in await ledger.usage() if u.period == "run"]
    assert [u.window for u in runs] == ["late"]
