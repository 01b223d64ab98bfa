"""Properties over generated ledgers (SQLite): export sums to the summary, and
audit is clean until any single row is edited or deleted."""

from __future__ import annotations

import csv
import io
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing.ledger import LedgerRow, audit, iter_csv, open_ledger, summary, with_costs

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
PRICE = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def rows(draw: st.DrawFn) -> list[LedgerRow]:
    count = draw(st.integers(min_value=1, max_value=25))
    out = []
    for i in range(count):
        prompt = draw(st.integers(0, 200_000))
        cached = draw(st.integers(0, prompt))
        known = draw(st.booleans()) or i == 0
        prices: dict[str, Any] = {
            f"{prefix}price_{kind}": draw(PRICE) if known or prefix else None
            for prefix in ("", "baseline_")
            for kind in ("input", "cached_input", "cache_write", "output")
        }
        out.append(
            with_costs(
                LedgerRow(
                    request_id=f"r{i}",
                    ts=START + timedelta(microseconds=draw(st.integers(0, 60 * 86_400 * 10**6))),
                    tenant=draw(st.sampled_from(["a", "b", "c,d"])),
                    prompt_tokens=prompt,
                    cached_prompt_tokens=cached,
                    completion_tokens=draw(st.integers(0, 50_000)),
                    baseline_prompt_tokens=prompt,
                    baseline_completion_tokens=draw(st.integers(0, 50_000)),
                    price_source="catalog" if known else "unknown",
                    baseline_price_source="config",
                    overhead_cost=draw(st.integers(0, 50)),
                    **prices,
                )
            )
        )
    return out


@settings(max_examples=30, deadline=None, database=None)
@given(ledger=rows(), fee_rate=st.decimals(min_value=0, max_value=1, places=3))
def test_export_sums_equal_the_summary(ledger: list[LedgerRow], fee_rate: Decimal) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_ledger(f"sqlite:///{tmp}/l.db")
        store.write_batch(ledger)
        text = b"".join(iter_csv(store, start=START, end=END)).decode()
        exported = list(csv.DictReader(io.StringIO(text, newline="")))
        result = summary(store, start=START, end=END, fee_rate=fee_rate, period="all")
        store.close()
    assert len(exported) == len(ledger)
    for row in result:
        mine = [r for r in exported if r["tenant"] == row.tenant]
        priced = [r for r in mine if r["savings_usd"]]
        assert row.requests == len(mine) and row.priced_requests == len(priced)
        for column, total in (
            ("cost_usd", row.cost),
            ("baseline_cost_usd", row.baseline_cost),
            ("savings_usd", row.savings),
        ):
            assert sum(Decimal(r[column]) for r in priced) * 1_000_000 == total
    assert sum(r.requests for r in result) == len(ledger)


EDITS = [
    "cost = COALESCE(cost, 0) + 1",
    "prompt_tokens = prompt_tokens + 1",
    "price_output = '999'",
    "ts = ts + 1",
    "tenant = tenant || 'x'",
    "savings = COALESCE(savings, 0) - 1",
    "DELETE",
]


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ledger=rows(), victim=st.integers(min_value=0), edit=st.sampled_from(EDITS))
def test_audit_detects_any_single_edit_or_delete(
    ledger: list[LedgerRow], victim: int, edit: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.db"
        store = open_ledger(f"sqlite:///{path}")
        store.write_batch(ledger)
        assert audit(store).ok
        target = ledger[victim % len(ledger)].request_id
        statement = (
            "DELETE FROM ledger_rows" if edit == "DELETE" else f"UPDATE ledger_rows SET {edit}"
        )
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"{statement} WHERE request_id = ?", [target])
        conn.close()
        report = audit(store)
        store.close()
    assert not report.ok
