"""Records: the writer's fast path accepts, normalises and hashes exactly as rows do."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.ledger import LedgerRow, canonical_bytes, with_costs
from pricing.ledger.chain import canonical_record_bytes, iso_z, iso_z_us, link, link_records
from pricing.ledger.record import (
    RECORD_COLUMNS,
    check_record,
    checked_records,
    line_record,
    record_line,
    record_of,
    row_of,
)
from pricing.ledger.schema import encode, us_to_ts
from tests.pricing.ledger.ledger_testkit import make_row

TEXT = st.text(max_size=12)
OPTIONAL_TEXT = st.none() | TEXT
PRICE = st.none() | st.decimals(min_value=0, max_value=10**6, allow_nan=False, places=6)
COUNT = st.integers(min_value=0, max_value=10**9)


@st.composite
def rows(draw: st.DrawFn) -> LedgerRow:
    ts = datetime(1, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=draw(st.integers(min_value=0, max_value=315_537_897_599_999_999))
    )
    prices: dict[str, Any] = {
        f"{prefix}price_{kind}": draw(PRICE)
        for prefix in ("", "baseline_")
        for kind in ("input", "cached_input", "cache_write", "output")
    }
    return with_costs(
        LedgerRow(
            request_id=draw(st.text(min_size=1, max_size=20)),
            ts=ts,
            tenant=draw(st.text(min_size=1, max_size=8)),
            key_id=draw(OPTIONAL_TEXT),
            agent=draw(OPTIONAL_TEXT),
            workflow=draw(OPTIONAL_TEXT),
            requested_model=draw(TEXT),
            served_model=draw(TEXT),
            cache_status=draw(st.sampled_from(["miss", "exact", "semantic", "bypass"])),
            route_reason=draw(TEXT),
            attempts=draw(st.integers(0, 5)),
            attempts_detail=draw(TEXT),
            prompt_tokens=draw(COUNT),
            completion_tokens=draw(COUNT),
            usage_source=draw(st.sampled_from(["upstream", "estimated", "none"])),
            price_source=draw(st.sampled_from(["catalog", "override", "config", "unknown"])),
            baseline_price_source=draw(st.sampled_from(["catalog", "config", "unknown"])),
            overhead_cost=draw(COUNT),
            upstream_ms=draw(st.none() | COUNT),
            proxy_ms=draw(COUNT),
            http_status=draw(st.integers(100, 599)),
            error_type=draw(OPTIONAL_TEXT),
            **prices,
        )
    )


@settings(max_examples=200, deadline=None, database=None)
@given(row=rows(), seq=st.integers(1, 10**12), prev=st.text(max_size=64))
def test_a_records_check_hash_and_values_are_the_rows(row: LedgerRow, seq: int, prev: str) -> None:
    record = record_of(row)
    assert check_record(record) == record
    assert row_of(record) == replace(row, seq=None, prev_hash=None, row_hash=None)
    assert canonical_record_bytes(record, seq=seq, prev_hash=prev) == canonical_bytes(
        replace(row, seq=seq, prev_hash=prev)
    )
    assert line_record(record_line(record)) == record


def test_linked_records_match_linked_rows() -> None:
    rows_ = [make_row(i, tenant="a" if i % 3 else "b") for i in range(20)]
    values, heads = link_records([record_of(r) for r in rows_], {})
    linked, row_heads = link(rows_, {})
    assert values == [encode(r) for r in linked]
    assert heads == row_heads


def _with(record: tuple[Any, ...], column: str, value: Any) -> tuple[Any, ...]:
    i = RECORD_COLUMNS.index(column)
    return (*record[:i], value, *record[i + 1 :])


BAD_VALUES = [
    ("tenant", ""),
    ("request_id", None),
    ("ts", "yesterday"),
    ("ts", 10**20),
    ("cache_status", "maybe"),
    ("usage_source", 3),
    ("price_input", "-1"),
    ("price_input", "NaN"),
    ("price_output", "ten"),
    ("prompt_tokens", "many"),
    ("prompt_tokens", None),
    ("served_model", 5),
    ("agent", ["a"]),
]


@pytest.mark.parametrize(("column", "value"), BAD_VALUES)
def test_records_are_refused_exactly_where_rows_are(column: str, value: Any) -> None:
    bad = _with(record_of(make_row(1)), column, value)
    with pytest.raises(ValueError):
        row_of(bad)
    with pytest.raises(ValueError):
        check_record(bad)


def test_prices_are_normalised_to_their_decimal_text() -> None:
    record = _with(record_of(make_row(1)), "price_input", Decimal("2.50"))
    assert check_record(record)[RECORD_COLUMNS.index("price_input")] == "2.50"
    assert check_record(_with(record, "price_input", 3))[RECORD_COLUMNS.index("price_input")] == "3"


def test_unreadable_records_and_lines_are_set_aside_in_order() -> None:
    good = [record_of(make_row(i)) for i in range(3)]
    bad = _with(good[1], "tenant", "")
    rejected: list[bytes] = []
    out = checked_records(
        records=[good[0], bad, good[2]],
        lines=[record_line(good[1]), b'{"request_id": "torn', b"[1, 2]\n"],
        reject=rejected.append,
    )
    assert out == [good[0], good[2], good[1]]
    assert len(rejected) == 3 and all(line.endswith(b"\n") for line in rejected)
    assert line_record(rejected[0])[0] == good[1][0]


@settings(max_examples=500, deadline=None, database=None)
@given(us=st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_999_999))
def test_the_timestamp_text_from_microseconds_is_the_rows(us: int) -> None:
    assert iso_z_us(us) == iso_z(us_to_ts(us))
