"""Pure row arithmetic: costs, hashes, fees and money formatting."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pricing.ledger import (
    LedgerRow,
    canonical_bytes,
    expected_costs,
    fee_micro,
    format_micro,
    row_hash,
    with_costs,
)
from pricing.ledger.chain import genesis, link
from tests.pricing.ledger.ledger_testkit import BASE_TS, make_row


def test_costs_are_exact_sums_rounded_once() -> None:
    row = with_costs(
        LedgerRow(
            request_id="r",
            ts=BASE_TS,
            tenant="t",
            price_source="catalog",
            prompt_tokens=1001,
            cached_prompt_tokens=1,
            cache_creation_tokens=0,
            completion_tokens=3,
            price_input=Decimal("0.15"),
            price_cached_input=Decimal("0.075"),
            price_cache_write=Decimal("0"),
            price_output=Decimal("0.6"),
            overhead_cost=2,
            baseline_prompt_tokens=1001,
            baseline_cached_prompt_tokens=1,
            baseline_completion_tokens=3,
            baseline_price_input=Decimal("2.5"),
            baseline_price_cached_input=Decimal("1.25"),
            baseline_price_cache_write=Decimal("0"),
            baseline_price_output=Decimal("10"),
            baseline_price_source="catalog",
        )
    )
    # 1000 x 0.15 + 1 x 0.075 + 3 x 0.6 = 151.875 -> 152, plus 2 overhead.
    assert row.cost == 154
    # 1000 x 2.5 + 1 x 1.25 + 3 x 10 = 2531.25 -> 2531.
    assert row.baseline_cost == 2531
    assert row.savings == 2531 - 154


def test_half_even_rounding_of_a_row() -> None:
    row = make_row(0, prompt_tokens=1, cached_prompt_tokens=0, completion_tokens=0)
    assert replace(row, price_input=Decimal("2.5")).unit_prices is not None
    assert with_costs(replace(row, price_input=Decimal("2.5"))).cost == 2
    assert with_costs(replace(row, price_input=Decimal("3.5"))).cost == 4


def test_unknown_price_source_never_costs_zero_by_accident() -> None:
    row = make_row(1, price_source="unknown")
    costs = expected_costs(row)
    assert costs.cost is None and costs.savings is None
    assert costs.baseline_cost is not None
    baseline = expected_costs(make_row(1, baseline_price_source="unknown"))
    assert baseline.cost is not None and baseline.baseline_cost is None and baseline.savings is None


def test_rows_are_validated_and_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    row = make_row(0, ts=datetime(2026, 11, 3, 13, 0, tzinfo=cet))
    assert row.ts == datetime(2026, 11, 3, 12, 0, tzinfo=cet) + timedelta(hours=1)
    assert row.ts.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_row(0, ts=datetime(2026, 11, 3))
    with pytest.raises(ValueError, match="cache_status"):
        make_row(0, cache_status="warm")
    with pytest.raises(ValueError, match="price"):
        make_row(0, price_input=Decimal("NaN"))
    with pytest.raises(ValueError, match="Decimal"):
        make_row(0, price_output=2.5)
    with pytest.raises(ValueError, match="int"):
        make_row(0, completion_tokens=True)
    with pytest.raises(ValueError, match="str"):
        make_row(0, agent=7)


def test_canonical_form_is_exact_and_covers_every_field() -> None:
    row = make_row(2)
    items = json.loads(canonical_bytes(row))
    names = [name for name, _ in items]
    assert "row_hash" not in names and names[0] == "request_id" and "prev_hash" in names
    values = dict(items)
    assert values["ts"] == "2026-11-03T12:00:02.000002Z"
    assert values["price_cache_write"] == "3.125" and values["cost"] == row.cost
    for name in names:
        changed = _changed(row, name)
        assert row_hash(changed) != row_hash(row), name


def _changed(row: LedgerRow, name: str) -> LedgerRow:
    value = getattr(row, name)
    new: Any
    if isinstance(value, datetime):
        new = value + timedelta(microseconds=1)
    elif isinstance(value, Decimal | int):
        new = value + 1
    elif name == "seq":
        new = (value or 0) + 1
    elif name in ("cache_status", "usage_source", "price_source", "baseline_price_source"):
        new = {"miss": "exact", "upstream": "none"}.get(value, "config")
    else:
        new = (value or "") + "x"
    changes: dict[str, Any] = {name: new}
    return replace(row, **changes)


def test_link_continues_each_tenant_from_its_head() -> None:
    rows = [make_row(i, tenant=t) for i, t in enumerate("abab")]
    first, heads = link(rows[:2], {})
    second, heads2 = link(rows[2:], heads)
    assert [r.seq for r in first + second] == [1, 1, 2, 2]
    assert second[0].prev_hash == first[0].row_hash
    assert heads2["a"].row_hash == second[0].row_hash
    assert link([], {"a": genesis("a")}) == ([], {})


@pytest.mark.parametrize(
    ("amount", "text"),
    [(1234567, "1.234567"), (-5, "-0.000005"), (0, "0.000000"), (-1_000_000, "-1.000000")],
)
def test_format_micro(amount: int, text: str) -> None:
    assert format_micro(amount) == text
    assert Decimal(text) * 1_000_000 == amount


def test_fee_is_half_even_and_never_negative() -> None:
    assert fee_micro(1_234_565, Decimal("0.1")) == 123_456  # 123456.5 -> even
    assert fee_micro(1_234_575, Decimal("0.1")) == 123_458  # 123457.5 -> even
    assert fee_micro(-9_000, Decimal("0.1")) == 0
    assert fee_micro(0, Decimal("0.1")) == 0
    with pytest.raises(ValueError):
        fee_micro(10, Decimal("-0.1"))
