"""What a proxy's ``/metrics`` and ledger say, before and after a scenario.

* event-loop lag: ``spendgate_event_loop_lag_seconds`` (the proxy runs with
  ``server.loop_lag_probe``), the difference of two scrapes as p50, p99 and
  max. Percentiles are interpolated inside histogram buckets (as Prometheus's
  ``histogram_quantile`` does) and the max is the upper edge of the highest
  bucket reached, so each is "at most" its bucket edge; the 5 ms edge makes a
  "p99 under 5 ms" check exact.
* requests the proxy counted (``spendgate_requests_total``) and ledger rows,
  which must match once the writer has caught up.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

LAG = "spendgate_event_loop_lag_seconds"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LE = re.compile(r'le="([^"]+)"')


def scrape(base_url: str) -> dict[str, Any]:
    """The samples of interest from one ``GET /metrics``."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10.0) as response:
        text = response.read().decode()
    lag: dict[float, float] = {}
    requests = backlog = spill = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == LAG + "_bucket":
            le = _LE.search(labels)
            if le is not None:
                lag[math.inf if le.group(1) == "+Inf" else float(le.group(1))] = value
        elif name == "spendgate_requests_total":
            requests += value
        elif name == "spendgate_ledger_backlog":
            backlog += value
        elif name == "spendgate_ledger_spill_pending":
            spill += value
    return {"lag_buckets": lag, "requests": requests, "backlog": backlog, "spill": spill}


def lag_summary(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """p50, p99 and max lag in ms between two scrapes (None without samples)."""
    edges = sorted(after["lag_buckets"])
    counts = [after["lag_buckets"][e] - before["lag_buckets"].get(e, 0.0) for e in edges]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return {"samples": 0}
    return {
        "samples": int(total),
        "p50_ms": _quantile(0.50, edges, counts),
        "p99_ms": _quantile(0.99, edges, counts),
        "max_ms": _highest(edges, counts),
    }


def _quantile(q: float, edges: list[float], cumulative: list[float]) -> float:
    rank = q * cumulative[-1]
    lower, below = 0.0, 0.0
    for edge, count in zip(edges, cumulative, strict=True):
        if count >= rank:
            if math.isinf(edge):
                return lower * 1000
            share = (rank - below) / (count - below) if count > below else 1.0
            return (lower + (edge - lower) * share) * 1000
        lower, below = edge, count
    return lower * 1000


def _highest(edges: list[float], cumulative: list[float]) -> float:
    previous = 0.0
    for edge, count in zip(edges, cumulative, strict=True):
        if count >= cumulative[-1]:
            return (edge if not math.isinf(edge) else previous) * 1000
        previous = edge
    return previous * 1000


def ledger_rows(db: Path) -> int:
    """Rows in a SQLite ledger file (0 before it exists)."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM ledger_rows").fetchone()[0]
        return count


def settled_ledger(base_url: str, db: Path, *, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait for the writer to catch up; the proxy's request count and the ledger's rows."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = scrape(base_url)
        rows = ledger_rows(db)
        caught_up = state["backlog"] == 0 and state["spill"] == 0 and rows >= state["requests"]
        if caught_up or time.monotonic() > deadline:
            return {"requests": int(state["requests"]), "rows": rows}
        time.sleep(0.1)
