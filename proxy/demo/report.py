"""The demo's savings report, read back from the ledger the proxy wrote.

Nothing here is computed on the side: totals and the fee come from
``pricing.ledger.summary`` (the same SQL aggregate invoices use), and the
breakdowns (cache hits, tiers, workflows) from the ledger's own rows.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pricing.cost import format_micro
from pricing.ledger import LedgerRow, LedgerStore, summary

TOP_WORKFLOWS = 5


@dataclass(frozen=True, slots=True)
class WorkflowCost:
    workflow: str
    requests: int
    cost: int
    savings: int


@dataclass(frozen=True, slots=True)
class DemoReport:
    """The ledger's account of the demo; money in integer micro-dollars."""

    requests: int
    priced_requests: int
    failed: int
    retried: int
    fell_back: int
    cache_hits: Mapping[str, int]
    tiers: Mapping[str, int]
    workflow_tiers: Mapping[str, Mapping[str, int]]
    cost: int
    baseline_cost: int
    savings: int
    fee_rate: Decimal
    fee: int
    top_workflows: tuple[WorkflowCost, ...]


def wait_for_rows(
    store: LedgerStore,
    *,
    start: datetime,
    end: datetime,
    expected: int,
    timeout_s: float,
    poll_s: float = 0.05,
) -> int:
    """Block until [start, end) holds ``expected`` rows (the writer batches them); the count seen."""
    deadline = time.monotonic() + timeout_s
    count = _rows_between(store, start, end)
    while count < expected and time.monotonic() < deadline:
        time.sleep(poll_s)
        count = _rows_between(store, start, end)
    return count


def _rows_between(store: LedgerStore, start: datetime, end: datetime) -> int:
    return sum(t.requests for t in store.totals(start=start, end=end))


def build_report(
    store: LedgerStore,
    *,
    start: datetime,
    end: datetime,
    fee_rate: Decimal,
    tiers: Mapping[str, str],
) -> DemoReport:
    """Summarise the rows in [start, end); ``tiers`` maps model names to their tier."""
    totals = summary(store, start=start, end=end, fee_rate=fee_rate, period="all")
    rows = list(store.iter_rows(start=start, end=end))
    return DemoReport(
        requests=sum(t.requests for t in totals),
        priced_requests=sum(t.priced_requests for t in totals),
        failed=sum(1 for r in rows if r.http_status >= 400),
        retried=sum(1 for r in rows if r.attempts > 1),
        fell_back=sum(1 for r in rows if len(attempted_models(r)) > 1),
        cache_hits=dict(Counter(r.cache_status for r in rows if r.cache_status != "miss")),
        tiers=_tier_mix(rows, tiers),
        workflow_tiers=_workflow_tier_mix(rows, tiers),
        cost=sum(t.cost for t in totals),
        baseline_cost=sum(t.baseline_cost for t in totals),
        savings=sum(t.savings for t in totals),
        fee_rate=fee_rate,
        # The fee is per tenant and period: the invoice total is the sum of those fees.
        fee=sum(t.fee for t in totals),
        top_workflows=top_workflows(rows),
    )


def attempted_models(row: LedgerRow) -> set[str]:
    """The models a row's request tried, from its attempt log."""
    try:
        attempts = json.loads(row.attempts_detail or "[]")
    except ValueError:
        return set()
    return {a["model"] for a in attempts if isinstance(a, dict) and "model" in a}


def _tier_mix(rows: Iterable[LedgerRow], tiers: Mapping[str, str]) -> dict[str, int]:
    """Upstream calls by the tier of the model that served them (cache hits excluded)."""
    mix: Counter[str] = Counter()
    for row in rows:
        if row.cache_status == "miss" and row.http_status < 400:
            mix[tiers.get(row.served_model, "untiered")] += 1
    return dict(mix)


def _workflow_tier_mix(
    rows: Iterable[LedgerRow], tiers: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """``_tier_mix`` per workflow."""
    by_workflow: dict[str, list[LedgerRow]] = {}
    for row in rows:
        by_workflow.setdefault(row.workflow or "(untagged)", []).append(row)
    return {name: _tier_mix(group, tiers) for name, group in sorted(by_workflow.items())}


def top_workflows(
    rows: Iterable[LedgerRow], *, limit: int = TOP_WORKFLOWS
) -> tuple[WorkflowCost, ...]:
    """The workflows that cost the most, from priced rows."""
    requests: Counter[str] = Counter()
    cost: Counter[str] = Counter()
    savings: Counter[str] = Counter()
    for row in rows:
        name = row.workflow or "(untagged)"
        requests[name] += 1
        cost[name] += row.cost or 0
        savings[name] += row.savings or 0
    ranked = sorted(requests, key=lambda name: (-cost[name], name))[:limit]
    return tuple(WorkflowCost(n, requests[n], cost[n], savings[n]) for n in ranked)


def usd(micro: int) -> str:
    """Micro-dollars as ``$1.234567`` (six places: the ledger's precision)."""
    text = format_micro(micro)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def percent(part: int, whole: int) -> str:
    """``part`` as a share of ``whole``, to a tenth of a percent, in integers (no float)."""
    if whole <= 0:
        return "n/a"
    tenths = (abs(part) * 1000 + whole // 2) // whole
    sign = "-" if part < 0 and tenths else ""
    return f"{sign}{tenths // 10}.{tenths % 10}%"


def _line(label: str, value: str) -> str:
    return f"  {label:<22}{value}"


def format_report(report: DemoReport, *, tier_order: Iterable[str]) -> str:
    """The report as the console shows it."""
    hits = report.cache_hits
    exact, semantic = hits.get("exact", 0), hits.get("semantic", 0)
    upstream = sum(report.tiers.values())
    mix = ", ".join(
        f"{tier} {report.tiers.get(tier, 0)} ({percent(report.tiers.get(tier, 0), upstream)})"
        for tier in tier_order
    )
    hit_share = percent(exact + semantic, report.requests)
    saved_share = percent(report.savings, report.baseline_cost)
    trouble = f"{report.retried} requests retried, {report.fell_back} fell back to another model"
    lines = [
        "Savings report (from the ledger)",
        _line(
            "requests", f"{report.requests} ({report.failed} failed after retries and fallbacks)"
        ),
        _line("upstream trouble", trouble),
        _line(
            "cache hits", f"{exact + semantic} ({exact} exact, {semantic} semantic), {hit_share}"
        ),
        _line("routing mix", f"{mix}  (requests that went upstream)"),
        *_workflow_mix_lines(report, tier_order),
        _line("cost", usd(report.cost)),
        _line("baseline", f"{usd(report.baseline_cost)}  (each request on the model it asked for)"),
        _line("savings", f"{usd(report.savings)}  ({saved_share} of baseline)"),
        _line(f"fee ({_fee_percent(report.fee_rate)} of savings)", usd(report.fee)),
        "",
        f"Top {TOP_WORKFLOWS} workflows by cost",
    ]
    width = max((len(w.workflow) for w in report.top_workflows), default=8)
    for w in report.top_workflows:
        lines.append(
            f"  {w.workflow:<{width}}  {w.requests:>4} {_plural(w.requests)}  cost {usd(w.cost)}  saved {usd(w.savings)}"
        )
    return "\n".join(lines)


def _workflow_mix_lines(report: DemoReport, tier_order: Iterable[str]) -> list[str]:
    order = list(tier_order)
    lines = []
    for workflow, mix in report.workflow_tiers.items():
        if mix:
            parts = ", ".join(f"{t} {mix[t]}" for t in order if mix.get(t))
            lines.append(_line("", f"{workflow}: {parts}"))
    return lines


def _plural(requests: int) -> str:
    return "request " if requests == 1 else "requests"


def _fee_percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"
