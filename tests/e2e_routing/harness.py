"""What the routing end-to-end tests add to the shared processes.

Two ``python -m proxy.demo.simulator`` processes act as two providers, so a
fallback to "the same tier on another provider" is visible in each one's
counters. A proxy's ledger is read back after a SIGTERM, which flushes it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pricing.ledger.row import LedgerRow
from tests.support.servers import Proxy as ServedProxy

SIM_KEY = "sim-key"
ADMIN_KEY = "admin-secret"
# How long the simulator's ``timeout`` fault holds a request: well past the
# short read timeouts the proxies get, short enough not to stall teardown.
SIM_HOLD_S = 3.0


def tag() -> str:
    """A short random tag for names that must not collide across runs."""
    return uuid.uuid4().hex[:10]


@dataclass
class Proxy(ServedProxy):
    """A ``spendgate serve`` process, and the request ids whose rows a test looked at."""

    request_ids: list[str] = field(default_factory=list)

    def row(self, request_id: str, *, timeout_s: float = 10.0) -> LedgerRow:
        """The one row of ``request_id``, waiting for the running proxy's writer."""
        self.request_ids.append(request_id)
        deadline = time.monotonic() + timeout_s
        while True:
            rows = [r for r in self.rows() if r.request_id == request_id]
            if rows or time.monotonic() > deadline:
                assert len(rows) == 1, f"{len(rows)} ledger rows for {request_id}"
                return rows[0]
            time.sleep(0.1)

    def check_one_row_each(self) -> None:
        """Stop, then assert the ledger holds exactly one row per request looked at."""
        self.stop()
        counts: dict[str, int] = dict.fromkeys(self.request_ids, 0)
        for row in self.rows():
            if row.request_id in counts:
                counts[row.request_id] += 1
        assert counts == dict.fromkeys(self.request_ids, 1), counts

    def budgets(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.base_url}/admin/budgets",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=5.0,
        )
        response.raise_for_status()
        budgets: list[dict[str, Any]] = response.json()["budgets"]
        return budgets


Launch = Callable[..., Proxy]


def ledger_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'ledger.db').resolve()}"


def gauge(metrics_text: str, name: str, labels: str) -> float | None:
    """The value of ``name{labels}`` in Prometheus text, or None when absent."""
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", re.MULTILINE)
    match = pattern.search(metrics_text)
    return float(match.group(1)) if match else None


def detail(row: LedgerRow) -> list[dict[str, Any]]:
    """A row's attempts_detail as a list of dicts."""
    parsed: list[dict[str, Any]] = json.loads(row.attempts_detail or "[]")
    return parsed


def by_request_id(rows: Sequence[LedgerRow], ids: Sequence[str]) -> dict[str, list[LedgerRow]]:
    """The rows of each request id in ``ids`` (a list, to catch duplicates)."""
    found: dict[str, list[LedgerRow]] = {i: [] for i in ids}
    for row in rows:
        if row.request_id in found:
            found[row.request_id].append(row)
    return found


def iter_sse_data(lines: Iterator[str]) -> list[str]:
    """The ``data:`` payloads of SSE lines, in order."""
    return [line[len("data:") :].strip() for line in lines if line.startswith("data:")]


TIERS = ("small", "medium", "large")


def least_tier(text: str) -> str:
    """The least tier the proxy's own scorer gives a one-message prompt ``text``.

    Fallback tests lay their tiers out around it, so they test the fallback
    order whatever the scoring weights say about one short prompt.
    """
    from routing.model import DEFAULT_QUALITY_TARGET
    from routing.scorer import Scorer

    scorer = Scorer.load()
    thresholds = scorer.model.operating(DEFAULT_QUALITY_TARGET).thresholds
    body = {"messages": [{"role": "user", "content": text}]}
    return thresholds.tier(scorer.score(body, thresholds=thresholds).value)


def tier_above(tier: str) -> str:
    return TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]
