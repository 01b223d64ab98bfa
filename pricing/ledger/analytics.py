"""Aggregates behind the dashboard, read from the ledger's rollup on SQLite and PostgreSQL.

Every function takes a store and a [start, end) window and returns frozen
values (spend over time: :mod:`pricing.ledger.timeseries`). Whole hours and days come from the rollup (:mod:`pricing.ledger.rollup`),
the partial hours at the window's edges from raw rows, so every count and
sum is exact for any bounds. Money follows the summary's convention: cost,
baseline and savings sum only priced rows (``savings IS NOT NULL``), so the
panels add up to the summary's totals. Latency is
``COALESCE(upstream_ms, 0) + proxy_ms``; p50 and p95 are nearest-rank over
the rollup's fixed latency buckets (exact below 100 ms, then 5% wide) and
report the lower edge of the bucket holding that rank.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pricing.ledger import rollup
from pricing.ledger.rollup import Plan
from pricing.ledger.schema import ROWS_TABLE, ts_to_us
from pricing.ledger.sql_store import SqlLedgerStore
from pricing.ledger.store import LedgerStore

GroupColumn = Literal["agent", "workflow", "step", "served_model"]
GROUP_COLUMNS: frozenset[str] = frozenset({"agent", "workflow", "step", "served_model"})

PRICED = "savings IS NOT NULL"
# One covering index on ts: the raw rows at a window's edges (and the
# timeseries' sub-hour buckets) are read from it alone.
_SPAN_INDEX = (
    "ts, tenant, cache_status, cost, baseline_cost, savings, agent, workflow, step, "
    "served_model, requested_model, error_type, upstream_ms, proxy_ms, prompt_tokens, "
    "completion_tokens"
)
# Built by earlier versions for full-window scans; now the rollup answers those.
_OBSOLETE_INDEXES = (
    "dash_tenant",
    "dash_agent",
    "dash_workflow",
    "dash_step",
    "dash_model",
    "dash_route",
)
COUNT = rollup.COUNTERS.index


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One agent, workflow, step or model over a window. ``key`` None = untagged."""

    key: str | None
    requests: int
    tokens: int
    cost: int
    savings: int
    errors: int
    rerouted: int
    upstream_ms_sum: int
    proxy_ms_sum: int
    p50_ms: int
    p95_ms: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_upstream_ms(self) -> float:
        return self.upstream_ms_sum / self.requests if self.requests else 0.0

    @property
    def mean_proxy_ms(self) -> float:
        return self.proxy_ms_sum / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class RouteCount:
    """How many requests asked for ``requested`` and were served by ``served``."""

    requested: str
    served: str
    requests: int


@dataclass(frozen=True, slots=True)
class ErrorCount:
    key: str | None
    error_type: str
    requests: int


def sql_store_of(store: LedgerStore) -> SqlLedgerStore:
    """``store`` as the SQL store the aggregates query (SQLite or PostgreSQL)."""
    if not isinstance(store, SqlLedgerStore):
        raise TypeError(f"analytics needs a SQL ledger store, not {type(store).__name__}")
    return store


def run_sql(store: LedgerStore, sql: str, params: Sequence[Any]) -> list[Any]:
    """The rows of ``sql`` (``{p}`` for each placeholder) on ``store``."""
    sql_store = sql_store_of(store)
    # The store's one query path: connection handling and error translation.
    return sql_store._query(sql.replace("{p}", sql_store.ph), params)


def ensure_indexes(store: LedgerStore) -> None:
    """Create the dashboard's covering ts index unless it exists (idempotent, blocking).

    When it was created the table is analysed, so both planners know it. On
    a large ledger that first call takes as long as the build. The
    group-ordered indexes earlier versions built for full scans are dropped:
    the rollup answers those, and each index slows every append.
    """
    name = f"{ROWS_TABLE}_dash_span_idx"
    postgres = sql_store_of(store).ph == "%s"
    if postgres:
        sql = (
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = {p}"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = {p}"
    existing = {str(r[0]) for r in run_sql(store, sql, [ROWS_TABLE])}
    for old in _OBSOLETE_INDEXES:
        if f"{ROWS_TABLE}_{old}_idx" in existing:
            run_sql(store, f"DROP INDEX IF EXISTS {ROWS_TABLE}_{old}_idx", [])
            if postgres:
                run_sql(store, f"DROP STATISTICS IF EXISTS {ROWS_TABLE}_{old}_stat", [])
    if name not in existing:
        run_sql(store, f"CREATE INDEX IF NOT EXISTS {name} ON {ROWS_TABLE} ({_SPAN_INDEX})", [])
        run_sql(store, f"ANALYZE {ROWS_TABLE}", [])


class _Sums:
    """One group's counters and dense latency histogram while a window is read."""

    __slots__ = ("counts", "dense")

    def __init__(self, counts: list[int], dense: list[int]) -> None:
        self.counts = counts
        self.dense = dense

    def add(self, counts: Sequence[int]) -> None:
        self.counts[:] = map(operator.add, self.counts, counts)


def _cells(
    store: LedgerStore,
    kind: str,
    plan: Plan,
    *,
    tenant: str | None,
    k1: str | None = None,
    workflow: str | None = None,
) -> dict[tuple[str, str], _Sums]:
    """The window's (k1, k2) cells of ``kind``: rollup and raw edges summed."""
    sql_store = sql_store_of(store)
    run, ph = sql_store._query, sql_store.ph
    out: dict[tuple[str, str], _Sums] = {}
    buckets = len(rollup.LATENCY_BOUNDS)

    def cell(a: str, b: str) -> _Sums:
        found = out.get((a, b))
        if found is None:
            found = out[(a, b)] = _Sums([0] * len(rollup.COUNTERS), [0] * buckets)
        return found

    for _, _, a, b, counts, hist in rollup.read_cells(
        run, ph, kind=kind, spans=plan.rollup, tenant=tenant, k1=k1
    ):
        sums = cell(a, b)
        sums.add(counts)
        rollup.add_hist(sums.dense, hist)
    raw = rollup.read_raw(run, ph, spans=plan.raw, tenant=tenant, workflow=workflow)
    for (_, _, _, _, a, b), tally in rollup.fold(
        raw, slots=lambda _ts: (("", 0),), kinds=frozenset({kind})
    ).items():
        if k1 is None or a == k1:
            sums = cell(a, b)
            sums.add(tally.counts)
            for i, n in tally.hist.items():
                sums.dense[i] += n
    return out


def _window_plan(start: datetime, end: datetime) -> Plan:
    return rollup.plan(ts_to_us(start), ts_to_us(end))


def group_stats(
    store: LedgerStore,
    *,
    start: datetime,
    end: datetime,
    by: GroupColumn,
    tenant: str | None = None,
    workflow: str | None = None,
) -> list[GroupStats]:
    """Requests, tokens, money, errors and latency percentiles per value of ``by``.

    ``workflow`` restricts the rows to one workflow (for its per-step view).
    Ordered by cost, then requests, descending. ``rerouted`` counts rows
    served by another model than the one requested. Restricting an agent or
    model view to one workflow has no rollup and reads the window's rows.
    """
    if by not in GROUP_COLUMNS:
        raise ValueError(f"cannot group by {by!r}")
    plan = _window_plan(start, end)
    k1 = None if workflow is None else rollup.tag(workflow)
    kind: str = by
    if workflow is not None and by in ("agent", "served_model"):
        # No rollup cell holds (workflow, agent) or (workflow, model): read rows.
        plan = Plan((), plan.raw if not plan.rollup else ((ts_to_us(start), ts_to_us(end)),))
        k1 = None
    cells = _cells(store, kind, plan, tenant=tenant, k1=k1, workflow=workflow)
    grouped: dict[str | None, _Sums] = {}
    for (a, b), sums in cells.items():
        name = rollup.untag(b if by == "step" else a)
        group = grouped.get(name)
        if group is None:
            grouped[name] = sums
        else:
            group.add(sums.counts)
            group.dense[:] = map(operator.add, group.dense, sums.dense)
    out = [_stats(k, s) for k, s in grouped.items()]
    out.sort(key=lambda g: (-g.cost, -g.requests, g.key is None, g.key or ""))
    return out


def _stats(key: str | None, sums: _Sums) -> GroupStats:
    c = sums.counts
    n = c[COUNT("requests")]
    bounds = rollup.LATENCY_BOUNDS
    hist = [(bounds[i], count) for i, count in enumerate(sums.dense) if count]
    return GroupStats(
        key=key,
        requests=n,
        tokens=c[COUNT("tokens")],
        cost=c[COUNT("cost")],
        savings=c[COUNT("savings")],
        errors=c[COUNT("errors")],
        rerouted=c[COUNT("rerouted")],
        upstream_ms_sum=c[COUNT("upstream_ms")],
        proxy_ms_sum=c[COUNT("proxy_ms")],
        p50_ms=nearest_rank(hist, n, 50),
        p95_ms=nearest_rank(hist, n, 95),
    )


def nearest_rank(hist: Sequence[tuple[int, ...]], n: int, pct: int) -> int:
    """The smallest latency with at least ``pct``% of ``n`` rows at or below it.

    ``hist`` holds (latency, count, ...) in increasing latency.
    """
    running = 0
    for latency, count, *_ in hist:
        running += count
        if running * 100 >= n * pct:
            return latency
    raise ValueError("histogram holds fewer rows than n")


def error_counts(
    store: LedgerStore,
    *,
    start: datetime,
    end: datetime,
    by: GroupColumn,
    tenant: str | None = None,
) -> list[ErrorCount]:
    """Failed requests per value of ``by`` and error type, most frequent first."""
    if by not in GROUP_COLUMNS:
        raise ValueError(f"cannot group by {by!r}")
    cells = _cells(store, f"error:{by}", _window_plan(start, end), tenant=tenant)
    out = [
        ErrorCount(key=rollup.untag(a), error_type=b, requests=t.counts[0])
        for (a, b), t in cells.items()
    ]
    out.sort(key=lambda e: (-e.requests, e.key or "", e.error_type))
    return out


def route_counts(
    store: LedgerStore, *, start: datetime, end: datetime, tenant: str | None = None
) -> list[RouteCount]:
    """Requests per (requested model, served model) pair, most frequent first."""
    cells = _cells(store, "route", _window_plan(start, end), tenant=tenant)
    merged: dict[tuple[str, str], int] = {}
    for (a, b), t in cells.items():
        pair = (rollup.untag(a) or "", rollup.untag(b) or "")
        merged[pair] = merged.get(pair, 0) + t.counts[0]
    out = [RouteCount(requested=r, served=s, requests=n) for (r, s), n in merged.items()]
    out.sort(key=lambda c: (-c.requests, c.requested, c.served))
    return out
