"""Spend, baseline, savings and cache hits over time, for the dashboard's charts.

Buckets of any width are aligned on the window's start. The whole hours in a
bucket come from the hourly rollup, the rest from the ledger's rows, so every
sum is exact; money follows the summary's convention (see
:mod:`pricing.ledger.analytics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pricing.ledger import rollup
from pricing.ledger.analytics import COUNT, PRICED, run_sql, sql_store_of
from pricing.ledger.schema import ROWS_TABLE, ts_to_us
from pricing.ledger.store import LedgerStore


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
    The whole hours inside a bucket come from the rollup, the rest from rows.
    """
    width_us = int(width // timedelta(microseconds=1))
    if width_us <= 0:
        raise ValueError("bucket width must be positive")
    start_us, end_us = ts_to_us(start), ts_to_us(end)
    count = -(-(end_us - start_us) // width_us)
    sums = [[0] * 6 for _ in range(count)]
    hours: dict[int, tuple[int, int]] = {}
    raw: list[tuple[int, int, int]] = []
    for i in range(count):
        lo, hi = start_us + i * width_us, min(start_us + (i + 1) * width_us, end_us)
        covered = rollup.plan(lo, hi)
        if covered.rollup:
            hours[i] = (covered.rollup[0][1], covered.rollup[-1][2])
        raw.extend((i, a, b) for a, b in covered.raw)
    if hours:
        _hourly_buckets(store, sums, hours, start_us, width_us, tenant)
    for i, *values in _raw_buckets(store, raw, tenant):
        for j, v in enumerate(values):
            sums[int(i)][j] += int(v)
    return [Bucket(start + i * width, *sums[i]) for i in range(count)]


_SERIES = tuple(
    COUNT(c)
    for c in ("requests", "cost", "baseline_cost", "savings", "exact_hits", "semantic_hits")
)


def _hourly_buckets(
    store: LedgerStore,
    sums: list[list[int]],
    hours: dict[int, tuple[int, int]],
    start_us: int,
    width_us: int,
    tenant: str | None,
) -> None:
    """Add each bucket's whole hours, read from the hourly rollup in one query."""
    sql_store = sql_store_of(store)
    lo, hi = min(a for a, _ in hours.values()), max(b for _, b in hours.values())
    for _, hour, _, _, counts, _ in rollup.read_cells(
        sql_store._query, sql_store.ph, kind="total", spans=[("h", lo, hi)], tenant=tenant
    ):
        i = (hour - start_us) // width_us
        # An hour straddling two buckets is read from rows by both instead.
        if i in hours and hours[i][0] <= hour < hours[i][1]:
            for j, c in enumerate(_SERIES):
                sums[i][j] += counts[c]


def _raw_buckets(
    store: LedgerStore, pieces: Sequence[tuple[int, int, int]], tenant: str | None
) -> list[Any]:
    """(bucket index, six sums) of the rows in each (index, from, to) piece."""
    parts: list[str] = []
    params: list[Any] = []
    for i, lo, hi in pieces:
        where = "ts >= {p} AND ts < {p}" + ("" if tenant is None else " AND tenant = {p}")
        params.extend([lo, hi] if tenant is None else [lo, hi, tenant])
        # One range aggregate per piece, glued with UNION ALL: each reads its
        # own slice of the ts index, where a GROUP BY on a computed bucket
        # would sort every row.
        parts.append(
            f"SELECT {i}, COUNT(*), "
            f"COALESCE(SUM(CASE WHEN {PRICED} THEN cost END), 0), "
            f"COALESCE(SUM(CASE WHEN {PRICED} THEN baseline_cost END), 0), "
            "COALESCE(SUM(savings), 0), "
            "COALESCE(SUM(CASE WHEN cache_status = 'exact' THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN cache_status = 'semantic' THEN 1 ELSE 0 END), 0) "
            f"FROM {ROWS_TABLE} WHERE {where}"
        )
    return run_sql(store, " UNION ALL ".join(parts), params) if parts else []
