"""Per-tenant, per-period billing summary, aggregated in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pricing.cost import fee_micro, format_micro
from pricing.ledger.chain import iso_z
from pricing.ledger.export import csv_lines, spreadsheet_text
from pricing.ledger.store import LedgerStore

Period = Literal["month", "all"]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "tenant",
    "period_start",
    "period_end",
    "requests",
    "priced_requests",
    "unpriced_requests",
    "cost_usd",
    "baseline_cost_usd",
    "savings_usd",
    "fee_rate",
    "fee_usd",
)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One tenant over one period; money in micro-dollars, priced rows only.

    ``unpriced_requests`` counts rows whose cost or baseline is unknown: they
    are left out of cost, baseline, savings and fee, and flagged here.
    """

    tenant: str
    period_start: datetime
    period_end: datetime
    requests: int
    priced_requests: int
    unpriced_requests: int
    cost: int
    baseline_cost: int
    savings: int
    fee_rate: Decimal
    fee: int


def periods(start: datetime, end: datetime, period: Period) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC calendar-month boundaries (or left whole)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if period == "all" or start >= end:
        return [(start, end)] if start < end else []
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        year, month = (
            (cursor.year + 1, 1) if cursor.month == 12 else (cursor.year, cursor.month + 1)
        )
        boundary = min(end, datetime(year, month, 1, tzinfo=UTC))
        out.append((cursor, boundary))
        cursor = boundary
    return out


def summary(
    store: LedgerStore,
    *,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    fee_rate: Decimal,
    period: Period = "month",
) -> list[SummaryRow]:
    """One row per tenant and period with requests, cost, baseline, savings and fee.

    The fee is ``fee_rate`` x the tenant's net savings over the period,
    rounded half to even to micro-dollars and never below zero. Blocking.
    """
    out: list[SummaryRow] = []
    for p_start, p_end in periods(start, end, period):
        for t in store.totals(start=p_start, end=p_end, tenant=tenant):
            out.append(
                SummaryRow(
                    tenant=t.tenant,
                    period_start=p_start,
                    period_end=p_end,
                    requests=t.requests,
                    priced_requests=t.priced_requests,
                    unpriced_requests=t.unpriced_requests,
                    cost=t.cost,
                    baseline_cost=t.baseline_cost,
                    savings=t.savings,
                    fee_rate=fee_rate,
                    fee=fee_micro(t.savings, fee_rate),
                )
            )
    out.sort(key=lambda r: (r.tenant, r.period_start))
    return out


def summary_csv(rows: Iterable[SummaryRow]) -> Iterator[bytes]:
    """The summary in the export's CSV dialect, money as six-place USD."""
    cells = (
        [
            spreadsheet_text(r.tenant),
            iso_z(r.period_start),
            iso_z(r.period_end),
            str(r.requests),
            str(r.priced_requests),
            str(r.unpriced_requests),
            format_micro(r.cost),
            format_micro(r.baseline_cost),
            format_micro(r.savings),
            format(r.fee_rate, "f"),
            format_micro(r.fee),
        ]
        for r in rows
    )
    return csv_lines(cells, header=SUMMARY_COLUMNS)
