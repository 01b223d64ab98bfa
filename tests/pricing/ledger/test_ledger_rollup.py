"""The rollup against brute-force aggregates over the raw rows, on both engines."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pricing.ledger import LedgerRow, LedgerStore, open_ledger, summary
from pricing.ledger.analytics import (
    ErrorCount,
    GroupColumn,
    GroupStats,
    RouteCount,
    error_counts,
    group_stats,
    route_counts,
)
from pricing.ledger.rollup import LATENCY_BOUNDS, ROLLUP_TABLE, latency_bucket
from pricing.ledger.sql_store import SqlLedgerStore
from pricing.ledger.timeseries import Bucket, timeseries
from tests.pricing.ledger.ledger_testkit import Backend, pg_url_for

T0 = datetime(2026, 10, 30, 21, 0, tzinfo=UTC)
SPAN = timedelta(days=3, hours=5)
AGENTS = ("a", "b", None)
WORKFLOWS = ("w1", "w2", None)
STEPS = ("s1", "s2", None)
MODELS = ("m1", "m2", "m3")


def random_rows(rng: random.Random, count: int, *, prefix: str = "r") -> list[LedgerRow]:
    """Rows over SPAN from T0 with every nullable field sometimes NULL."""
    rows = []
    for i in range(count):
        requested = rng.choice(MODELS)
        served = requested if rng.random() < 0.5 else rng.choice(MODELS)
        priced = rng.random() < 0.85
        cost, baseline = rng.randrange(0, 5000), rng.randrange(0, 9000)
        failed = rng.random() < 0.15
        rows.append(
            LedgerRow(
                request_id=f"{prefix}-{i}",
                ts=T0
                + timedelta(microseconds=rng.randrange(int(SPAN / timedelta(microseconds=1)))),
                tenant=rng.choice(("t1", "t2", "t3")),
                agent=rng.choice(AGENTS),
                workflow=rng.choice(WORKFLOWS),
                step=rng.choice(STEPS),
                requested_model=requested,
                served_model=served,
                baseline_model=requested,
                cache_status=rng.choice(("miss", "miss", "exact", "semantic", "bypass")),
                prompt_tokens=rng.randrange(0, 3000),
                completion_tokens=rng.randrange(0, 900),
                # An unpriced row may know its cost but not its baseline.
                cost=cost if priced or rng.random() < 0.5 else None,
                baseline_cost=baseline if priced else None,
                savings=baseline - cost if priced else None,
                upstream_ms=None if rng.random() < 0.2 else int(rng.lognormvariate(5, 1.5)),
                proxy_ms=rng.randrange(0, 60),
                http_status=502 if failed else 200,
                error_type=rng.choice(("upstream_error", "timeout_error")) if failed else None,
            )
        )
    return rows


def random_windows(rng: random.Random, count: int) -> list[tuple[datetime, datetime]]:
    """Windows with edges mid-hour, on hours, on days, and wider than the data."""
    fixed = [
        (T0 - timedelta(days=1), T0 + SPAN + timedelta(days=1)),
        (datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
        (T0 + timedelta(hours=2), T0 + timedelta(hours=5)),
        (T0 + timedelta(minutes=17), T0 + timedelta(minutes=43)),
        (T0 + timedelta(hours=3, minutes=59), T0 + timedelta(days=2, hours=1, seconds=1)),
    ]
    total_us = int(SPAN / timedelta(microseconds=1))
    for _ in range(count):
        a, b = sorted(rng.randrange(-(10**9), total_us + 10**9) for _ in range(2))
        fixed.append((T0 + timedelta(microseconds=a), T0 + timedelta(microseconds=b + 1)))
    return fixed


def _latency(r: LedgerRow) -> int:
    return 0 if r.proxy_ms is None else (r.upstream_ms or 0) + r.proxy_ms


def _rank(latencies: list[int], pct: int) -> int:
    ordered = sorted(latency_bucket(x) for x in latencies)
    return ordered[-(-len(ordered) * pct // 100) - 1]


def brute_groups(rows: list[LedgerRow], by: str, workflow: str | None = None) -> list[GroupStats]:
    """GroupStats computed row by row, independently of any SQL."""
    groups: dict[str | None, list[LedgerRow]] = {}
    for r in rows:
        if workflow is None or r.workflow == workflow:
            groups.setdefault(getattr(r, by), []).append(r)
    out = [
        GroupStats(
            key=k,
            requests=len(g),
            tokens=sum(r.prompt_tokens + r.completion_tokens for r in g),
            cost=sum(r.cost or 0 for r in g if r.savings is not None),
            savings=sum(r.savings or 0 for r in g),
            errors=sum(r.error_type is not None for r in g),
            rerouted=sum(r.served_model != r.requested_model for r in g),
            upstream_ms_sum=sum(r.upstream_ms or 0 for r in g),
            proxy_ms_sum=sum(r.proxy_ms or 0 for r in g),
            p50_ms=_rank([_latency(r) for r in g], 50),
            p95_ms=_rank([_latency(r) for r in g], 95),
        )
        for k, g in groups.items()
    ]
    out.sort(key=lambda s: (-s.cost, -s.requests, s.key is None, s.key or ""))
    return out


def brute_totals(rows: list[LedgerRow]) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for tenant in sorted({r.tenant for r in rows}):
        own = [r for r in rows if r.tenant == tenant]
        priced = [r for r in own if r.savings is not None]
        out[tenant] = (
            len(own),
            len(priced),
            sum(r.cost or 0 for r in priced),
            sum(r.baseline_cost or 0 for r in priced),
            sum(r.savings or 0 for r in priced),
        )
    return out


def brute_series(
    rows: list[LedgerRow], start: datetime, end: datetime, width: timedelta
) -> list[Bucket]:
    count = -(-(end - start) // width)
    out = []
    for i in range(count):
        lo, hi = start + i * width, min(start + (i + 1) * width, end)
        inside = [r for r in rows if lo <= r.ts < hi]
        priced = [r for r in inside if r.savings is not None]
        out.append(
            Bucket(
                lo,
                len(inside),
                sum(r.cost or 0 for r in priced),
                sum(r.baseline_cost or 0 for r in priced),
                sum(r.savings or 0 for r in priced),
                sum(r.cache_status == "exact" for r in inside),
                sum(r.cache_status == "semantic" for r in inside),
            )
        )
    return out


def assert_matches_rows(
    store: LedgerStore, rows: list[LedgerRow], start: datetime, end: datetime
) -> None:
    """Every rollup-backed aggregate over [start, end) equals the brute-force one."""
    inside = [r for r in rows if start <= r.ts < end]
    got = {
        t.tenant: (t.requests, t.priced_requests, t.cost, t.baseline_cost, t.savings)
        for t in store.totals(start=start, end=end)
    }
    assert got == brute_totals(inside)
    dims: tuple[GroupColumn, ...] = ("agent", "workflow", "step", "served_model")
    for by in dims:
        assert group_stats(store, start=start, end=end, by=by) == brute_groups(inside, by)
    restricted: tuple[tuple[GroupColumn, str], ...] = (
        ("step", "w1"),
        ("workflow", "w2"),
        ("agent", "w1"),
        ("served_model", "w2"),
    )
    for by, wf in restricted:
        got_wf = group_stats(store, start=start, end=end, by=by, workflow=wf)
        assert got_wf == brute_groups(inside, by, wf)
    own = [r for r in inside if r.tenant == "t2"]
    assert group_stats(store, start=start, end=end, by="agent", tenant="t2") == brute_groups(
        own, "agent"
    )
    errors: dict[tuple[str | None, str], int] = {}
    routes: dict[tuple[str, str], int] = {}
    for r in inside:
        routes[(r.requested_model, r.served_model)] = (
            routes.get((r.requested_model, r.served_model), 0) + 1
        )
        if r.error_type is not None:
            errors[(r.served_model, r.error_type)] = (
                errors.get((r.served_model, r.error_type), 0) + 1
            )
    assert sorted(error_counts(store, start=start, end=end, by="served_model"), key=repr) == sorted(
        (ErrorCount(k, e, n) for (k, e), n in errors.items()), key=repr
    )
    assert sorted(route_counts(store, start=start, end=end), key=repr) == sorted(
        (RouteCount(a, b, n) for (a, b), n in routes.items()), key=repr
    )
    width = max((end - start) / 7, timedelta(minutes=1))
    assert timeseries(store, start=start, end=end, width=width) == brute_series(
        inside, start, end, width
    )


def _rollup_contents(backend: Backend) -> list[Any]:
    return sorted(tuple(r) for r in backend.execute(f"SELECT * FROM {ROLLUP_TABLE}"))


def test_rollup_aggregates_equal_brute_force(store: LedgerStore, backend: Backend) -> None:
    rng = random.Random(20261127)
    rows = random_rows(rng, 400)
    for k in range(0, len(rows), 37):
        store.write_batch(rows[k : k + 37])
    assert _rollup_contents(backend)
    for start, end in random_windows(rng, 12):
        assert_matches_rows(store, rows, start, end)


def test_summary_equals_brute_force_per_month(store: LedgerStore) -> None:
    rows = random_rows(random.Random(5), 200)
    store.write_batch(rows)
    start, end = T0 + timedelta(minutes=7, microseconds=3), T0 + SPAN - timedelta(minutes=11)
    got = summary(store, start=start, end=end, fee_rate=Decimal("0.1"))
    month = datetime(2026, 11, 1, tzinfo=UTC)
    expected = []
    for lo, hi in ((start, month), (month, end)):
        for tenant, sums in brute_totals([r for r in rows if lo <= r.ts < hi]).items():
            expected.append((tenant, lo, hi, *sums))
    assert sorted(
        (
            s.tenant,
            s.period_start,
            s.period_end,
            s.requests,
            s.priced_requests,
            s.cost,
            s.baseline_cost,
            s.savings,
        )
        for s in got
    ) == sorted(expected)


def test_backfill_on_schema_creation_and_rebuild_are_idempotent(
    store: LedgerStore, backend: Backend
) -> None:
    rows = random_rows(random.Random(9), 150)
    store.write_batch(rows)
    written = _rollup_contents(backend)
    assert isinstance(store, SqlLedgerStore)
    assert store.rebuild_rollups() == len(rows)
    assert _rollup_contents(backend) == written
    # A ledger from before the rollup: opening it summarises the existing rows.
    backend.execute(f"DROP TABLE {ROLLUP_TABLE}")
    reopened = open_ledger(backend.url)
    try:
        assert _rollup_contents(backend) == written
        open_ledger(backend.url).close()  # a second start-up finds it and leaves it alone
        assert _rollup_contents(backend) == written
        assert_matches_rows(reopened, rows, T0 + timedelta(minutes=30), T0 + SPAN)
    finally:
        reopened.close()


def test_rollup_check_finds_tampering(store: LedgerStore, backend: Backend) -> None:
    rows = random_rows(random.Random(11), 120)
    store.write_batch(rows)
    assert isinstance(store, SqlLedgerStore)
    assert store.rollup_discrepancies() == []
    backend.execute(
        f"UPDATE {ROLLUP_TABLE} SET cost = cost + 1 "
        "WHERE kind = 'agent' AND k1 = '=a' AND grain = 'd'"
    )
    found = store.rollup_discrepancies()
    assert found and all("'agent', 'd'" in line and "'=a'" in line for line in found)
    store.rebuild_rollups()
    assert store.rollup_discrepancies() == []
    backend.execute(f"DELETE FROM ledger_rows WHERE request_id = '{rows[0].request_id}'")
    assert len(store.rollup_discrepancies()) >= 6


def test_latency_buckets_are_exact_below_100ms_then_five_percent() -> None:
    assert [latency_bucket(x) for x in (0, 1, 57, 99)] == [0, 1, 57, 99]
    assert latency_bucket(100) == latency_bucket(104) == 100 and latency_bucket(105) == 105
    wide = [b for b in LATENCY_BOUNDS if b >= 100]
    assert all(0 < (b - a) / a <= 0.05 for a, b in itertools.pairwise(wide))
    assert latency_bucket(10**9) == LATENCY_BOUNDS[-1]


@pytest.mark.postgres
def test_concurrent_pg_writers_keep_the_rollup_exact(pg_schema: str) -> None:
    url = pg_url_for(pg_schema)
    stores = [open_ledger(url) for _ in range(3)]
    per_replica = [random_rows(random.Random(n), 120, prefix=f"p{n}") for n in range(3)]
    shared = random_rows(random.Random(99), 60, prefix="shared")
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def replica(n: int) -> Callable[[], None]:
        def job() -> None:
            try:
                barrier.wait()
                for k in range(0, 120, 10):
                    # Every replica also retries the shared rows: each lands once.
                    stores[n].write_batch(per_replica[n][k : k + 10] + shared[k // 2 : k // 2 + 5])
            except BaseException as exc:
                errors.append(exc)

        return job

    threads = [threading.Thread(target=replica(n)) for n in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        rows = [r for own in per_replica for r in own] + shared
        for start, end in random_windows(random.Random(3), 4):
            assert_matches_rows(stores[0], rows, start, end)
        backend = Backend("postgres", url, _pg_execute(url))
        before = _rollup_contents(backend)
        assert isinstance(stores[1], SqlLedgerStore) and isinstance(stores[2], SqlLedgerStore)
        assert stores[2].rollup_discrepancies() == []
        stores[1].rebuild_rollups()
        assert _rollup_contents(backend) == before
    finally:
        for s in stores:
            s.close()


def _pg_execute(url: str) -> Callable[[str], list[Any]]:
    import psycopg

    def execute(statement: str) -> list[Any]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement.encode())
            return cur.fetchall() if cur.description is not None else []

    return execute
