"""The dashboard's pages: ledger aggregates in, complete HTML documents out.

Each renderer blocks on the database; the routes call them off the event
loop. Period totals come from :func:`pricing.ledger.summary.summary`, the
function behind ``spendgate export --summary`` and ``GET /admin/summary``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

from pricing.cost import format_micro
from pricing.ledger.analytics import GroupStats, error_counts, group_stats, route_counts
from pricing.ledger.store import LedgerStore
from pricing.ledger.summary import summary
from pricing.ledger.timeseries import timeseries as series_of
from proxy.ops.dashboard.html import Column, e, label, page, percent, stat, table
from proxy.ops.dashboard.svg import Series, int_ticks, line_chart, stacked_bars
from proxy.ops.dashboard.window import Window
from routing.budgets import BudgetUsage


@dataclass(frozen=True, slots=True)
class PageContext:
    """What every page needs: where to read, which window, how to sort."""

    store: LedgerStore
    window: Window
    fee_rate: Decimal
    budgets: Sequence[BudgetUsage]
    tenant: str | None = None
    sort: str | None = None
    descending: bool = True


@dataclass(frozen=True, slots=True)
class Totals:
    """The window's totals, summed over tenants from the billing summary."""

    requests: int
    unpriced_requests: int
    cost: int
    baseline_cost: int
    savings: int
    fee: int


def period_totals(ctx: PageContext) -> Totals:
    """Totals of the summary (period "all") over the window; the fee is per tenant."""
    rows = summary(
        ctx.store,
        start=ctx.window.start,
        end=ctx.window.end,
        tenant=ctx.tenant,
        fee_rate=ctx.fee_rate,
        period="all",
    )
    return Totals(
        requests=sum(r.requests for r in rows),
        unpriced_requests=sum(r.unpriced_requests for r in rows),
        cost=sum(r.cost for r in rows),
        baseline_cost=sum(r.baseline_cost for r in rows),
        savings=sum(r.savings for r in rows),
        fee=sum(r.fee for r in rows),
    )


def usd(micro: int) -> str:
    return f"${format_micro(micro)}"


def ms(value: float) -> str:
    return f"{value:.0f} ms"


def _bucket_label(win: Window) -> Callable[[int], str]:
    fmt = "%m-%d" if win.bucket >= timedelta(days=1) else "%m-%d %H:%M"
    return lambda i: (win.start + i * win.bucket).strftime(fmt)


def render_overview(ctx: PageContext) -> str:
    """Totals and fee, spend and cache charts, and budgets."""
    win = ctx.window
    totals = period_totals(ctx)
    buckets = series_of(
        ctx.store, start=win.start, end=win.end, width=win.bucket, tenant=ctx.tenant
    )
    labels = [_bucket_label(win)(i) for i in range(len(buckets))]
    money = [
        Series("spend", "c1", [b.cost for b in buckets]),
        Series("baseline", "c2", [b.baseline_cost for b in buckets]),
        Series("savings", "c3", [b.savings for b in buckets]),
    ]
    ticks = int_ticks([v for s in money for v in s.values if isinstance(v, int)])
    spend_chart = line_chart(
        money, labels, ticks=ticks, fmt=lambda v: format_micro(int(v)), title="USD per bucket"
    )
    rates = [
        Series("exact", "c1", [b.exact_rate for b in buckets]),
        Series("semantic", "c4", [b.semantic_rate for b in buckets]),
    ]
    cache_chart = line_chart(
        rates, labels, ticks=[0, 0.25, 0.5, 0.75, 1], fmt=percent, title="Cache hit rate"
    )
    requests = sum(b.requests for b in buckets)
    exact, semantic = sum(b.exact_hits for b in buckets), sum(b.semantic_hits for b in buckets)
    head = "".join(
        [
            stat("Requests", str(totals.requests), stat_id="total-requests"),
            stat("Spend", usd(totals.cost), stat_id="total-cost"),
            stat("Baseline", usd(totals.baseline_cost), stat_id="total-baseline"),
            stat("Savings", usd(totals.savings), stat_id="total-savings"),
            stat(f"Fee ({ctx.fee_rate:%} of net savings)", usd(totals.fee), stat_id="total-fee"),
            stat("Unpriced requests", str(totals.unpriced_requests), stat_id="total-unpriced"),
        ]
    )
    hit = "".join(
        [
            stat("Exact hits", _rate(exact, requests), stat_id="exact-rate"),
            stat("Semantic hits", _rate(semantic, requests), stat_id="semantic-rate"),
        ]
    )
    body = (
        f'<section id="spend"><h2>Spend, baseline and savings</h2><div class="tot">{head}</div>'
        f"{spend_chart}</section>"
        f'<section id="cache"><h2>Cache</h2><div class="tot">{hit}</div>{cache_chart}</section>'
        f'<section id="budgets"><h2>Budgets</h2>{_budgets(ctx.budgets)}</section>'
    )
    return page("Overview", body, active="overview", win=win)


def _rate(part: int, whole: int) -> str:
    return percent(part / whole if whole else 0.0)


def _budgets(budgets: Sequence[BudgetUsage]) -> str:
    if not budgets:
        return '<p class="muted">No budgets configured.</p>'
    rows = []
    for b in budgets:
        used = min(b.used_micro, b.limit_micro) / b.limit_micro if b.limit_micro else 1.0
        rows.append(
            f"<tr><td>{e(b.name)}</td><td>{e(b.subject)}</td><td>{e(b.period)}</td>"
            f"<td>{e(b.window)}</td><td class=n>{e(usd(b.limit_micro))}</td>"
            f'<td class=n data-col="used">{e(usd(b.used_micro))}</td>'
            f'<td class=n data-col="remaining">{e(usd(b.remaining_micro))}</td>'
            f'<td><div class="meter"><i style="width:{used * 100:.1f}%"></i></div></td></tr>'
        )
    return (
        '<table id="budget-table"><thead><tr><th>Budget</th><th>Subject</th><th>Period</th>'
        '<th>Window</th><th class="n">Limit</th><th class="n">Used</th>'
        '<th class="n">Remaining</th><th>Used</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _group_columns(heading: str, total_cost: int) -> list[Column[GroupStats]]:
    def share(g: GroupStats) -> float:
        return g.cost / total_cost if total_cost else 0.0

    return [
        Column("name", heading, lambda g: label(g.key), lambda g: label(g.key), numeric=False),
        Column("requests", "Requests", lambda g: str(g.requests), lambda g: g.requests),
        Column("tokens", "Tokens", lambda g: str(g.tokens), lambda g: g.tokens),
        Column("cost", "Cost", lambda g: usd(g.cost), lambda g: g.cost),
        Column("share", "Share of cost", lambda g: percent(share(g)), share),
        Column("savings", "Savings", lambda g: usd(g.savings), lambda g: g.savings),
        Column("errors", "Error rate", lambda g: percent(g.error_rate), lambda g: g.error_rate),
        Column("p50", "p50 latency (≈)", lambda g: ms(g.p50_ms), lambda g: g.p50_ms),
        Column("p95", "p95 latency (≈)", lambda g: ms(g.p95_ms), lambda g: g.p95_ms),
    ]


def _group_table(
    ctx: PageContext,
    groups: Sequence[GroupStats],
    *,
    heading: str,
    table_id: str,
    link: Callable[[GroupStats], str | None] | None = None,
    extra: Sequence[Column[GroupStats]] = (),
) -> str:
    total_cost = sum(g.cost for g in groups)
    return table(
        groups,
        [*_group_columns(heading, total_cost), *extra],
        table_id=table_id,
        base_query=_base_query(ctx),
        sort=ctx.sort,
        descending=ctx.descending,
        link=link,
    )


def _base_query(ctx: PageContext) -> Mapping[str, str]:
    query = ctx.window.query()
    return query if ctx.tenant is None else {**query, "tenant": ctx.tenant}


def _groups(ctx: PageContext, by: str, *, workflow: str | None = None) -> list[GroupStats]:
    win = ctx.window
    return group_stats(
        ctx.store,
        start=win.start,
        end=win.end,
        by=by,  # type: ignore[arg-type]  # callers pass GroupColumn literals
        tenant=ctx.tenant,
        workflow=workflow,
    )


def render_agents(ctx: PageContext) -> str:
    """One row per agent."""
    body = _group_table(ctx, _groups(ctx, "agent"), heading="Agent", table_id="agents")
    return page(
        "Agents", f'<section id="agent-panel">{body}</section>', active="agents", win=ctx.window
    )


def workflow_href(ctx: PageContext, name: str | None) -> str | None:
    """The drill-down page of a workflow (None for untagged rows)."""
    if name is None:
        return None
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in _base_query(ctx).items())
    return f"/dashboard/workflow/{quote(name, safe='')}?{query}"


def render_workflows(ctx: PageContext) -> str:
    """One row per workflow, each linking to its per-step page."""
    body = _group_table(
        ctx,
        _groups(ctx, "workflow"),
        heading="Workflow",
        table_id="workflows",
        link=lambda g: workflow_href(ctx, g.key),
    )
    return page(
        "Workflows", f'<section id="workflow-panel">{body}</section>', active="workflows",
        win=ctx.window,
    )  # fmt: skip


def render_workflow(ctx: PageContext, name: str) -> str:
    """One workflow: cost, tokens and the upstream/proxy latency split per step."""
    steps = _groups(ctx, "step", workflow=name)
    steps.sort(key=lambda g: (g.key is None, g.key or ""))
    split: list[Column[GroupStats]] = [
        Column("upstream", "Mean upstream", lambda g: ms(g.mean_upstream_ms),
               lambda g: g.mean_upstream_ms),
        Column("proxy", "Mean proxy", lambda g: ms(g.mean_proxy_ms), lambda g: g.mean_proxy_ms),
    ]  # fmt: skip
    body = _group_table(ctx, steps, heading="Step", table_id="steps", extra=split)
    labels = [label(g.key) for g in steps]
    bars = [
        Series("upstream", "c1", [round(g.mean_upstream_ms) for g in steps]),
        Series("proxy", "c4", [round(g.mean_proxy_ms) for g in steps]),
    ]
    ticks = int_ticks([round(g.mean_upstream_ms + g.mean_proxy_ms) for g in steps])
    chart = stacked_bars(
        bars, labels, ticks=ticks, fmt=lambda v: f"{v:.0f} ms", title="Mean latency per step"
    )
    costs = [Series("cost", "c1", [g.cost for g in steps])]
    cost_chart = stacked_bars(
        costs, labels, ticks=int_ticks([g.cost for g in steps]),
        fmt=lambda v: format_micro(int(v)), title="Cost per step (USD)",
    )  # fmt: skip
    content = (
        f'<section id="step-panel"><h2>Steps</h2>{body}</section>'
        f'<section id="step-charts">{chart}{cost_chart}</section>'
    )
    return page(f"Workflow {name}", content, active="workflows", win=ctx.window)


def render_models(ctx: PageContext) -> str:
    """Requests, cost, errors, latency and routing share per served model."""
    win = ctx.window
    models = _groups(ctx, "served_model")
    total = sum(g.requests for g in models)
    routes = route_counts(ctx.store, start=win.start, end=win.end, tenant=ctx.tenant)
    away: dict[str, int] = {}
    for r in routes:
        if r.requested != r.served:
            away[r.requested] = away.get(r.requested, 0) + r.requests

    def share(g: GroupStats) -> float:
        return g.requests / total if total else 0.0

    extra: list[Column[GroupStats]] = [
        Column("routing", "Routing share", lambda g: percent(share(g)), share),
        Column("rerouted", "Routed here", lambda g: str(g.rerouted), lambda g: g.rerouted),
        Column("away", "Routed away", lambda g: str(away.get(g.key or "", 0)),
               lambda g: away.get(g.key or "", 0)),
    ]  # fmt: skip
    models_table = _group_table(ctx, models, heading="Model", table_id="models", extra=extra)
    errors = error_counts(ctx.store, start=win.start, end=win.end, by="served_model",
                          tenant=ctx.tenant)  # fmt: skip
    per_model = {g.key: g.requests for g in models}
    error_rows = (
        "".join(
            f"<tr><td>{e(label(x.key))}</td><td>{e(x.error_type)}</td>"
            f'<td class="n">{x.requests}</td>'
            f'<td class="n">{e(percent(x.requests / max(per_model.get(x.key, 0), 1)))}</td></tr>'
            for x in errors
        )
        or '<tr><td colspan="4" class="muted">No errors.</td></tr>'
    )
    route_rows = (
        "".join(
            f"<tr><td>{e(r.requested)}</td><td>{e(r.served)}</td><td class=n>{r.requests}</td>"
            f'<td class="n">{e(percent(r.requests / total if total else 0.0))}</td></tr>'
            for r in routes
        )
        or '<tr><td colspan="4" class="muted">No requests.</td></tr>'
    )
    body = (
        f'<section id="model-panel"><h2>Models</h2>{models_table}</section>'
        '<section id="error-panel"><h2>Errors by type</h2><table id="model-errors"><thead><tr>'
        '<th>Model</th><th>Error type</th><th class="n">Requests</th>'
        f'<th class="n">Rate</th></tr></thead><tbody>{error_rows}</tbody></table></section>'
        '<section id="route-panel"><h2>Routing</h2><table id="routes"><thead><tr>'
        '<th>Requested</th><th>Served</th><th class="n">Requests</th><th class="n">Share</th>'
        f"</tr></thead><tbody>{route_rows}</tbody></table></section>"
    )
    return page("Models", body, active="models", win=win)


PAGES: dict[str, Callable[[PageContext], str]] = {
    "overview": render_overview,
    "agents": render_agents,
    "workflows": render_workflows,
    "models": render_models,
}
