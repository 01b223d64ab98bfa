"""Page frame, period picker and sortable tables, as escaped server-side HTML."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from proxy.ops.dashboard.window import PERIODS, Window

T = TypeVar("T")
SortKey = int | float | str

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}
header a{color:#cfd8ff;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .who{margin-left:auto}header form{margin:0}
main{padding:16px 20px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;margin:0 0 16px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eceef2}
th{text-align:left;background:#f0f2f5}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th a{color:inherit}.tot{display:flex;gap:24px;flex-wrap:wrap}.tot div{min-width:120px}
.tot b{display:block;font-size:18px}.muted{color:#6b7385}.err{color:#b3261e}
form.period{display:flex;gap:8px;align-items:center;margin:0 0 12px;flex-wrap:wrap}
figure.chart{margin:0}figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;max-height:260px}.grid{stroke:#e3e6ec}.tick{font-size:11px;fill:#6b7385}
.line{fill:none;stroke-width:2}.key{font-weight:400;margin-left:12px}
.key::before{content:"";display:inline-block;width:10px;height:10px;margin-right:4px}
.c1{stroke:#3056d3;fill:#3056d3}.key.c1::before{background:#3056d3}
.c2{stroke:#9aa3b5;fill:#9aa3b5}.key.c2::before{background:#9aa3b5}
.c3{stroke:#1f9d55;fill:#1f9d55}.key.c3::before{background:#1f9d55}
.c4{stroke:#c27c0e;fill:#c27c0e}.key.c4::before{background:#c27c0e}
.chart .line{fill:none}.bar{stroke:none}.meter{background:#eceef2;height:8px;border-radius:4px;min-width:120px}
.meter i{display:block;height:8px;border-radius:4px;background:#3056d3}
"""
NAV = (
    ("overview", "/dashboard", "Overview"),
    ("agents", "/dashboard/agents", "Agents"),
    ("workflows", "/dashboard/workflows", "Workflows"),
    ("models", "/dashboard/models", "Models"),
)
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def e(value: object) -> str:
    """Escape any value for HTML text and attribute contents."""
    return escape(str(value), quote=True)


def label(value: str | None) -> str:
    """A group key for display: untagged rows show as "(none)"."""
    return "(none)" if value is None else value


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def page(title: str, body: str, *, active: str, win: Window | None) -> str:
    """A complete HTML document with the navigation and ``body`` (already escaped)."""
    query = f"?{urlencode(win.query())}" if win else ""
    links = "".join(
        f'<a href="{e(href + query)}"{" class=on" if key == active else ""}>{e(text)}</a>'
        for key, href, text in NAV
    )
    logout = (
        '<form class="who" method="post" action="/dashboard/logout">'
        '<button type="submit">Log out</button></form>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)} - Spendgate</title><style>{STYLE}</style></head><body>"
        f"<header><strong>Spendgate</strong>{links}{logout}</header>"
        f"<main><h1>{e(title)}</h1>{period_form(win) if win else ''}{body}</main></body></html>"
    )


def period_form(win: Window) -> str:
    """The period picker: a GET form, so the window lives in the URL."""
    options = "".join(
        f'<option value="{p}"{" selected" if p == win.period else ""}>{p}</option>'
        for p in [*PERIODS, "custom"]
    )
    start, end = (_local(win.start), _local(win.end)) if win.period == "custom" else ("", "")
    return (
        '<form class="period" method="get">'
        f'<label>Period <select name="period">{options}</select></label>'
        f'<label>from <input name="from" value="{e(start)}" placeholder="2026-11-01"></label>'
        f'<label>to <input name="to" value="{e(end)}" placeholder="2026-11-08"></label>'
        '<button type="submit">Show</button>'
        f'<span class="muted" id="window">{e(_local(win.start))} to {e(_local(win.end))} UTC'
        "</span></form>"
    )


def _local(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Column(Generic[T]):
    """A table column: its sort key in the URL, heading, cell text and sort value."""

    key: str
    heading: str
    cell: Callable[[T], str]
    sort: Callable[[T], SortKey]
    numeric: bool = True


def table(
    rows: Sequence[T],
    columns: Sequence[Column[T]],
    *,
    table_id: str,
    base_query: Mapping[str, str],
    sort: str | None,
    descending: bool,
    link: Callable[[T], str | None] | None = None,
) -> str:
    """A table sorted server-side by ``sort``; headings link to the other orders.

    Cell text from ``Column.cell`` is escaped here; ``link`` gives the first
    cell's target (already a safe URL path).
    """
    chosen = next((c for c in columns if c.key == sort), None)
    if chosen is not None:
        rows = sorted(rows, key=chosen.sort, reverse=descending)
    heads = []
    for c in columns:
        flip = "asc" if c.key == sort and descending else "desc"
        query = urlencode({**base_query, "sort": c.key, "dir": flip})
        mark = (" \u25bc" if descending else " \u25b2") if c.key == sort else ""
        cls = ' class="n"' if c.numeric else ""
        heads.append(f'<th{cls}><a href="?{e(query)}">{e(c.heading)}{e(mark)}</a></th>')
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(columns):
            text = e(c.cell(row))
            target = link(row) if link is not None and i == 0 else None
            if target is not None:
                text = f'<a href="{e(target)}">{text}</a>'
            cls = ' class="n"' if c.numeric else ""
            cells.append(f'<td{cls} data-col="{e(c.key)}">{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(columns)}" class="muted">No requests.</td></tr>')
    return (
        f'<table id="{e(table_id)}"><thead><tr>{"".join(heads)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def stat(name: str, value: str, *, stat_id: str) -> str:
    """One headline number."""
    return f'<div><span class="muted">{e(name)}</span><b id="{e(stat_id)}">{e(value)}</b></div>'


def with_query(path: str, query: Mapping[str, Any]) -> str:
    return f"{path}?{urlencode(dict(query))}" if query else path
