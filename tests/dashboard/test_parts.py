"""Periods, sessions and charts: the dashboard's pure parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from proxy.errors import RequestError
from proxy.ops.dashboard import session
from proxy.ops.dashboard.svg import Series, int_ticks, line_chart, stacked_bars
from proxy.ops.dashboard.window import MAX_BUCKETS, bucket_width, window_for

NOW = datetime(2026, 11, 27, 9, 30, 15, tzinfo=UTC)


def test_named_periods_end_at_the_next_minute() -> None:
    win = window_for("24h", now=NOW)
    assert win.end == datetime(2026, 11, 27, 9, 31, tzinfo=UTC)
    assert win.start == win.end - timedelta(hours=24)
    assert win.bucket == timedelta(minutes=30)
    assert window_for(None, now=NOW).period == "24h"
    assert window_for("1h", now=NOW).bucket == timedelta(minutes=1)
    assert window_for("30d", now=NOW).bucket == timedelta(hours=12)
    assert win.query() == {"period": "24h"}


def test_custom_period() -> None:
    win = window_for("custom", now=NOW, start="2026-11-01", end="2026-11-08T12:00:00Z")
    assert (win.start, win.end) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 8, 12, tzinfo=UTC),
    )
    assert (win.end - win.start) / win.bucket <= MAX_BUCKETS
    assert win.query() == {
        "period": "custom",
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-11-08T12:00:00Z",
    }
    for bad in (
        {"start": "2026-11-08", "end": "2026-11-01"},
        {"start": "2026-11-01"},
        {"start": "x", "end": "y"},
    ):
        with pytest.raises(RequestError):
            window_for("custom", now=NOW, **bad)
    with pytest.raises(RequestError):
        window_for("5y", now=NOW)
    assert bucket_width(timedelta(days=3650)) == timedelta(days=3650) / MAX_BUCKETS


def test_session_tokens() -> None:
    token = session.issue("k1", now=NOW, ttl=timedelta(minutes=5))
    assert session.valid(token, "k1", now=NOW)
    assert not session.valid(token, "k2", now=NOW)
    assert not session.valid(token, "k1", now=NOW + timedelta(minutes=6))
    expiry, _, signature = token.partition(".")
    assert not session.valid(f"{int(expiry) + 3600}.{signature}", "k1", now=NOW)
    for junk in (None, "", "k1", ".", "abc.def", "1" * 20 + ".x"):
        assert not session.valid(junk, "k1", now=NOW)


def test_int_ticks_cover_values_on_a_125_step() -> None:
    assert int_ticks([]) == [0, 1]
    assert int_ticks([5, 17]) == [0, 5, 10, 15, 20]
    assert int_ticks([-300, 12_345]) == [-5000, 0, 5000, 10_000, 15_000]


def test_charts_escape_labels_and_draw_every_point() -> None:
    series = [Series("<b>", "c1", [1, 2, 3]), Series("s", "c2", [0, 0, 4])]
    svg = line_chart(series, ["a", "<i>", "c"], ticks=[0, 2, 4], fmt=str, title="t&t")
    assert "<b>" not in svg and "<i>" not in svg and "&lt;i&gt;" in svg
    assert svg.count("<circle") == 6 and svg.count("<polyline") == 2
    bars = stacked_bars(series, ["a", "b", "c"], ticks=[0, 4, 8], fmt=str, title="x")
    assert bars.count("<rect") == 6
