"""Aggregates behind the dashboard, computed in SQL on SQLite and PostgreSQL.

Every function takes a store and a [start, end) window and returns frozen
values. Money follows the summary's convention: cost, baseline and savings
sum only priced rows (``savings IS NOT NULL``), so the panels add up to the
summary's totals. Latency is ``COALESCE(upstream_ms, 0) + proxy_ms``;
percentiles are nearest-rank (the smallest value with at least p% of the
group at or below it), computed exactly in SQL from a per-group histogram of
integer milliseconds, which both engines evaluate with the same window
functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pricing.ledger.schema import ROWS_TABLE, ts_to_us
from pricing.ledger.sql_store import SqlLedgerStore
from pricing.ledger.store import LedgerStore

GroupColumn = Literal["agent", "workflow", "step", "served_model"]
GROUP_COLUMNS: frozenset[str] = frozenset({"agent", "workflow", "step", "served_model"})

LATENCY_SQL = "(COALESCE(upstream_ms, 0) + proxy_ms)"
_PRICED = "savings IS NOT NULL"

# Covering indexes: each panel reads its rows from one index alone, never from
# the wide table rows, in the order its GROUP BY needs (so neither engine
# sorts a million rows). Tag values are capped at 128 characters upstream, so
# entries stay far below engine limits.
_MEASURES = (
    "ts, tenant, prompt_tokens, completion_tokens, cost, savings, error_type, "
    "upstream_ms, proxy_ms, requested_model, served_model"
)
_INDEXES: dict[str, str] = {
    "dash_span": (
        "ts, tenant, cache_status, cost, baseline_cost, savings, agent, workflow, step, "
        "served_model, requested_model, error_type, upstream_ms, proxy_ms, prompt_tokens, "
        "completion_tokens"
    ),
    "dash_tenant": "tenant, ts, cost, baseline_cost, savings",
    "dash_agent": f"agent, {LATENCY_SQL}, {_MEASURES}",
    "dash_workflow": f"workflow, {LATENCY_SQL}, {_MEASURES}",
    "dash_step": f"workflow, step, {LATENCY_SQL}, {_MEASURES}",
    "dash_model": f"served_model, {LATENCY_SQL}, {_MEASURES}",
    "dash_route": "served_model, requested_model, error_type, ts, tenant",
}
_SPAN = "dash_span"
# SQLite (without STAT4) cannot tell a wide window from a narrow one, so the
# index is chosen here: a window covering more than this share of the
# ledger's time span is read by scanning a group-ordered index whole (no
# sort); a narrower one by its ts range.
_WIDE_WINDOW = 0.25
_GROUPINGS = {
    "dash_agent": "agent",
    "dash_workflow": "workflow",
    "dash_step": "workflow, step",
    "dash_model": "served_model",
}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket [start, start + width): money in micro-dollars."""

    start: datetime
    requests: int
    cost: int
    baseline_cost: int
    savings: int
    exact_hits: int
    semantic_hits: int

    @property
    def exact_rate(self) -> float:
        return self.exact_hits / self.requests if self.requests else 0.0

    @property
    def semantic_rate(self) -> float:
        return self.semantic_hits / self.requests if self.requests else 0.0


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


def _sql_store(store: LedgerStore) -> SqlLedgerStore:
    if not isinstance(store, SqlLedgerStore):
        raise TypeError(f"analytics needs a SQL ledger store, not {type(store).__name__}")
    return store


def _run(store: LedgerStore, sql: str, params: Sequence[Any]) -> list[Any]:
    sql_store = _sql_store(store)
    # The store's one query path: connection handling and error translation.
    return sql_store._query(sql.replace("{p}", sql_store.ph), params)


def ensure_indexes(store: LedgerStore) -> None:
    """Create the dashboard's covering indexes unless they exist (idempotent, blocking).

    On PostgreSQL, also multi-column statistics on each (group, latency) pair:
    without them the planner guesses far too few groups and prefers a full
    table scan with a spilling hash aggregate over the ordered index. When
    anything was created the table is analysed, so both planners know the new
    indexes. On a large ledger that first call takes as long as the builds.
    """
    postgres = _sql_store(store).ph == "%s"
    existing = _existing_indexes(store, postgres=postgres)
    missing = [name for name in _INDEXES if f"{ROWS_TABLE}_{name}_idx" not in existing]
    for name in missing:
        _run(
            store,
            f"CREATE INDEX IF NOT EXISTS {ROWS_TABLE}_{name}_idx ON {ROWS_TABLE} "
            f"({_INDEXES[name]})",
            [],
        )
    if postgres:
        for name in missing:
            if name in _GROUPINGS:
                _run(
                    store,
                    f"CREATE STATISTICS IF NOT EXISTS {ROWS_TABLE}_{name}_stat (ndistinct) "
                    f"ON {_GROUPINGS[name]}, {LATENCY_SQL} FROM {ROWS_TABLE}",
                    [],
                )
    if missing:
        _run(store, f"ANALYZE {ROWS_TABLE}", [])


def _existing_indexes(store: LedgerStore, *, postgres: bool) -> set[str]:
    if postgres:
        sql = (
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = {p}"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = {p}"
    return {str(r[0]) for r in _run(store, sql, [ROWS_TABLE])}


def _where(
    start: datetime, end: datetime, tenant: str | None, extra: dict[str, str] | None = None
) -> tuple[str, list[Any]]:
    return _where_us(ts_to_us(start), ts_to_us(end), tenant, extra)


def _where_us(
    start_us: int, end_us: int, tenant: str | None, extra: dict[str, str] | None = None
) -> tuple[str, list[Any]]:
    clause, params = _filters(tenant, extra)
    return "ts >= {p} AND ts < {p}" + clause, [start_us, end_us, *params]


def _filters(tenant: str | None, extra: dict[str, str] | None) -> tuple[str, list[Any]]:
    """`` AND column = value`` for each equality filter, and their parameters."""
    clause, params = "", []
    filters = dict(extra or {})
    if tenant is not None:
        filters["tenant"] = tenant
    for column, value in sorted(filters.items()):
        if column not in GROUP_COLUMNS and column != "tenant":
            raise ValueError(f"cannot filter on {column!r}")
        clause += f" AND {column} = {{p}}"
        params.append(value)
    return clause, params


def _source(store: LedgerStore, grouped: str | None, *, window: tuple[int, int]) -> str:
    """The FROM clause: on SQLite, pinned to the index that reads the window fastest.

    The window's share of the ledger is estimated from its share of the
    ledger's time span (two index probes, no counting). PostgreSQL's planner
    makes this choice itself from its statistics.
    """
    sql_store = _sql_store(store)
    if sql_store.ph == "%s":
        return ROWS_TABLE
    existing = _existing_indexes(store, postgres=False)
    span = f"{ROWS_TABLE}_{_SPAN}_idx"
    if span not in existing:
        return ROWS_TABLE
    target = f"{ROWS_TABLE}_{grouped}_idx"
    if grouped is None or target not in existing:
        return f"{ROWS_TABLE} INDEXED BY {span}"
    # Two subqueries: SQLite answers a lone MIN or MAX from the index, not a pair.
    ((first, last),) = _run(
        store,
        f"SELECT (SELECT MIN(ts) FROM {ROWS_TABLE}), (SELECT MAX(ts) FROM {ROWS_TABLE})",
        [],
    )
    if first is None:
        return f"{ROWS_TABLE} INDEXED BY {span}"
    overlap = min(window[1], int(last) + 1) - max(window[0], int(first))
    wide = overlap > (int(last) + 1 - int(first)) * _WIDE_WINDOW
    return f"{ROWS_TABLE} INDEXED BY {target if wide else span}"


def timeseries(
    store: LedgerStore,
    *,
    start: datetime,
    end: datetime,
    width: timedelta,
    tenant: str | None = None,
) -> list[Bucket]:
    """Spend, baseline, savings and cache hits per bucket of ``width``, gaps as zeros.

    Buckets are aligned on ``start``; the last one may be cut short by ``end``.
    """
    width_us = int(width // timedelta(microseconds=1))
    if width_us <= 0:
        raise ValueError("bucket width must be positive")
    start_us, end_us = ts_to_us(start), ts_to_us(end)
    count = -(-(end_us - start_us) // width_us)
    # One range aggregate per bucket, glued with UNION ALL: each reads its own
    # slice of the ts index in order, where a GROUP BY on a computed bucket
    # would sort every row of the window.
    source = _source(store, None, window=(start_us, end_us))
    parts, params = [], []
    for i in range(count):
        lo, hi = start_us + i * width_us, min(start_us + (i + 1) * width_us, end_us)
        where, args = _where_us(lo, hi, tenant)
        parts.append(
            f"SELECT {i}, COUNT(*), "
            f"COALESCE(SUM(CASE WHEN {_PRICED} THEN cost END), 0), "
            f"COALESCE(SUM(CASE WHEN {_PRICED} THEN baseline_cost END), 0), "
            "COALESCE(SUM(savings), 0), "
            "COALESCE(SUM(CASE WHEN cache_status = 'exact' THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN cache_status = 'semantic' THEN 1 ELSE 0 END), 0) "
            f"FROM {source} WHERE {where}"
        )
        params.extend(args)
    rows = _run(store, " UNION ALL ".join(parts), params) if parts else []
    found = {int(r[0]): r for r in rows}
    return [
        Bucket(
            start=start + i * width,
            requests=int(found[i][1]),
            cost=int(found[i][2]),
            baseline_cost=int(found[i][3]),
            savings=int(found[i][4]),
            exact_hits=int(found[i][5]),
            semantic_hits=int(found[i][6]),
        )
        for i in range(count)
    ]


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
    served by another model than the one requested.
    """
    if by not in GROUP_COLUMNS:
        raise ValueError(f"cannot group by {by!r}")
    extra = None if workflow is None else {"workflow": workflow}
    where, params = _where(start, end, tenant, extra)
    keys = f"workflow, {by}" if workflow is not None and by != "workflow" else by
    ordered = {"agent": "dash_agent", "workflow": "dash_workflow", "served_model": "dash_model"}
    index = "dash_step" if by == "step" and workflow is not None else ordered.get(by)
    window = (ts_to_us(start), ts_to_us(end))
    source = _source(store, index, window=window)
    # A histogram per (key, latency), read in index order; exact nearest-rank
    # percentiles follow from its running counts.
    sql = (
        f"SELECT {by}, {LATENCY_SQL}, COUNT(*), SUM(prompt_tokens + completion_tokens), "
        f"SUM(CASE WHEN {_PRICED} THEN cost END), SUM(savings), COUNT(error_type), "
        "SUM(CASE WHEN served_model <> requested_model THEN 1 ELSE 0 END), "
        "SUM(upstream_ms), SUM(proxy_ms) "
        f"FROM {source} WHERE {where} GROUP BY {keys}, {LATENCY_SQL} "
        f"ORDER BY {keys}, {LATENCY_SQL}"
    )
    grouped: dict[str | None, list[tuple[int, ...]]] = {}
    for k, *values in _run(store, sql, params):
        grouped.setdefault(k, []).append(tuple(int(v or 0) for v in values))
    out = [_fold(k, sorted(hist)) for k, hist in grouped.items()]
    out.sort(key=lambda g: (-g.cost, -g.requests, g.key is None, g.key or ""))
    return out


def _fold(key: str | None, hist: list[tuple[int, ...]]) -> GroupStats:
    """One group's stats from its (latency, count, sums...) rows in latency order."""
    sums = [sum(col) for col in zip(*hist, strict=True)]
    n = sums[1]
    return GroupStats(
        key=key,
        requests=n,
        tokens=sums[2],
        cost=sums[3],
        savings=sums[4],
        errors=sums[5],
        rerouted=sums[6],
        upstream_ms_sum=sums[7],
        proxy_ms_sum=sums[8],
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
    where, params = _where(start, end, tenant)
    index = "dash_route" if by == "served_model" else None
    source = _source(store, index, window=(ts_to_us(start), ts_to_us(end)))
    sql = (
        f"SELECT {by}, error_type, COUNT(*) FROM {source} "
        f"WHERE {where} AND error_type IS NOT NULL GROUP BY {by}, error_type"
    )
    out = [ErrorCount(key=k, error_type=e, requests=int(n)) for k, e, n in _run(store, sql, params)]
    out.sort(key=lambda e: (-e.requests, e.key or "", e.error_type))
    return out


def route_counts(
    store: LedgerStore, *, start: datetime, end: datetime, tenant: str | None = None
) -> list[RouteCount]:
    """Requests per (requested model, served model) pair, most frequent first."""
    where, params = _where(start, end, tenant)
    source = _source(store, "dash_route", window=(ts_to_us(start), ts_to_us(end)))
    sql = (
        f"SELECT requested_model, served_model, COUNT(*) FROM {source} "
        f"WHERE {where} GROUP BY served_model, requested_model"
    )
    out = [
        RouteCount(requested=r or "", served=s or "", requests=int(n))
        for r, s, n in _run(store, sql, params)
    ]
    out.sort(key=lambda c: (-c.requests, c.requested, c.served))
    return out
