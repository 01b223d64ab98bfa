"""The dashboard's aggregates on SQLite and PostgreSQL, against hand-computed values."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pricing.ledger import LedgerStore
from pricing.ledger.analytics import (
    ErrorCount,
    GroupStats,
    RouteCount,
    ensure_indexes,
    error_counts,
    group_stats,
    nearest_rank,
    route_counts,
)
from pricing.ledger.schema import ROWS_TABLE
from pricing.ledger.sql_store import SqlLedgerStore
from pricing.ledger.timeseries import timeseries
from tests.dashboard.ledger_rows import END, HOUR, SPECS, T0, make_row, sample_rows


@pytest.fixture
def filled(store: LedgerStore) -> LedgerStore:
    store.write_batch(sample_rows())
    ensure_indexes(store)
    return store


def test_timeseries_buckets_money_and_cache_hits(filled: LedgerStore) -> None:
    buckets = timeseries(filled, start=T0, end=END, width=HOUR)
    got = [
        (b.start, b.requests, b.cost, b.baseline_cost, b.savings, b.exact_hits, b.semantic_hits)
        for b in buckets
    ]
    assert got == [
        (T0, 2, 100, 600, 500, 1, 0),
        (T0 + HOUR, 1, 50, 50, 0, 0, 0),
        (T0 + 2 * HOUR, 1, 0, 40, 40, 0, 1),
        # The unpriced row counts as a request but adds no money.
        (T0 + 3 * HOUR, 2, 7, 7, 0, 0, 0),
    ]
    assert buckets[0].exact_rate == 0.5
    assert buckets[2].semantic_rate == 1.0


def test_timeseries_last_bucket_cut_by_end_and_empty_buckets(filled: LedgerStore) -> None:
    width = timedelta(minutes=150)
    buckets = timeseries(filled, start=T0, end=END, width=width)
    assert [(b.start, b.requests) for b in buckets] == [(T0, 4), (T0 + width, 2)]
    empty = timeseries(filled, start=END + HOUR, end=END + 3 * HOUR, width=HOUR)
    assert [(b.requests, b.cost) for b in empty] == [(0, 0), (0, 0)]


def test_group_stats_by_agent(filled: LedgerStore) -> None:
    stats = group_stats(filled, start=T0, end=END, by="agent")
    assert stats == [
        GroupStats("a", 4, 110, 150, 540, 1, 1, 35, 65, p50_ms=20, p95_ms=40),
        GroupStats(None, 1, 88, 7, 0, 1, 0, 3, 1, p50_ms=4, p95_ms=4),
        GroupStats("b", 1, 55, 0, 0, 0, 0, 90, 10, p50_ms=100, p95_ms=100),
    ]
    assert stats[0].error_rate == 0.25
    assert stats[0].mean_proxy_ms == 65 / 4


def test_group_stats_steps_of_one_workflow(filled: LedgerStore) -> None:
    steps = group_stats(filled, start=T0, end=END, by="step", workflow="w")
    by_key = {s.key: s for s in steps}
    assert set(by_key) == {"s1", "s2"}
    s1, s2 = by_key["s1"], by_key["s2"]
    assert (s1.requests, s1.tokens, s1.cost, s1.p50_ms, s1.p95_ms) == (2, 44, 150, 10, 30)
    assert (s1.upstream_ms_sum, s1.proxy_ms_sum) == (35, 5)
    assert (s2.requests, s2.tokens, s2.cost, s2.p50_ms, s2.p95_ms) == (2, 110, 7, 4, 20)


def test_group_stats_tenant_filter(filled: LedgerStore) -> None:
    stats = group_stats(filled, start=T0, end=END, by="workflow", tenant="t2")
    assert [(s.key, s.requests, s.cost, s.errors) for s in stats] == [("w", 1, 50, 1)]


def test_percentiles_are_nearest_rank(store: LedgerStore) -> None:
    spec = SPECS[0]
    rows = [
        make_row(i, spec, request_id=f"p-{i}", upstream_ms=latency, proxy_ms=0)
        for i, latency in enumerate([7, 3, 20, 1, 15, 9, 11, 2, 18, 5, 13, 4, 6, 17, 8, 19, 10,
                                     12, 16, 14])
    ]  # fmt: skip
    store.write_batch(rows)
    (stats,) = group_stats(store, start=T0, end=END, by="agent")
    # 20 values 1..20: rank ceil(0.5 * 20) = 10 and ceil(0.95 * 20) = 19.
    assert (stats.requests, stats.p50_ms, stats.p95_ms) == (20, 10, 19)


def test_percentiles_above_100ms_report_the_lower_edge_of_a_5_percent_bucket(
    store: LedgerStore,
) -> None:
    spec = SPECS[0]
    latencies = [957, 1003, 1004, 1004]
    store.write_batch(
        [
            make_row(i, spec, request_id=f"q-{i}", upstream_ms=latency, proxy_ms=0)
            for i, latency in enumerate(latencies)
        ]
    )
    (stats,) = group_stats(store, start=T0, end=END, by="agent")
    # Buckets near 1 s: [957, 1003] then [1004, 1053]; the ranks are 2 and 4.
    assert (stats.requests, stats.p50_ms, stats.p95_ms) == (4, 957, 1004)
    assert stats.upstream_ms_sum == sum(latencies)


def test_errors_and_routes(filled: LedgerStore) -> None:
    assert error_counts(filled, start=T0, end=END, by="served_model") == [
        ErrorCount("gpt-4o", "upstream_error", 1),
        ErrorCount("gpt-4o-mini", "rate_limit_error", 1),
    ]
    assert route_counts(filled, start=T0, end=END) == [
        RouteCount("gpt-4o", "gpt-4o", 3),
        RouteCount("gpt-4o-mini", "gpt-4o-mini", 2),
        RouteCount("gpt-4o", "gpt-4o-mini", 1),
    ]


def test_ensure_indexes_is_idempotent(filled: LedgerStore) -> None:
    before = group_stats(filled, start=T0, end=END, by="served_model")
    ensure_indexes(filled)
    assert group_stats(filled, start=T0, end=END, by="served_model") == before
    # gpt-4o-mini cost 100 + 0 + 7, gpt-4o 0 + 50 (plus one unpriced row).
    assert [(s.key, s.cost) for s in before] == [("gpt-4o-mini", 107), ("gpt-4o", 50)]


def test_ensure_indexes_drops_the_old_group_indexes(filled: LedgerStore) -> None:
    assert isinstance(filled, SqlLedgerStore)
    filled._query(f"CREATE INDEX {ROWS_TABLE}_dash_agent_idx ON {ROWS_TABLE} (agent, ts)")
    ensure_indexes(filled)
    if filled.ph == "?":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    names = {r[0] for r in filled._query(sql)}
    assert f"{ROWS_TABLE}_dash_span_idx" in names
    assert f"{ROWS_TABLE}_dash_agent_idx" not in names


def test_nearest_rank_and_bad_inputs(filled: LedgerStore) -> None:
    hist = [(5, 1), (9, 2), (12, 1)]
    assert [nearest_rank(hist, 4, p) for p in (1, 25, 26, 50, 75, 76, 100)] == [
        5,
        5,
        9,
        9,
        9,
        12,
        12,
    ]
    with pytest.raises(ValueError):
        nearest_rank(hist, 5, 100)
    with pytest.raises(ValueError):
        group_stats(filled, start=T0, end=END, by="tenant; DROP TABLE x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        timeseries(filled, start=T0, end=END, width=timedelta(0))


def test_every_index_path_gives_the_same_answer(store: LedgerStore) -> None:
    # With or without the covering ts index, and for windows read wholly from
    # rows or partly from the rollup, the answers agree.
    store.write_batch(sample_rows())
    windows = [(T0, END), (T0, T0 + HOUR), (T0 + 3 * HOUR, END)]

    def answers() -> list[object]:
        out: list[object] = []
        for start, end in windows:
            for by in ("agent", "workflow", "served_model"):
                out.append(group_stats(store, start=start, end=end, by=by))
            out.append(group_stats(store, start=start, end=end, by="step", workflow="w"))
            out.append(error_counts(store, start=start, end=end, by="served_model"))
            out.append(route_counts(store, start=start, end=end))
            out.append(timeseries(store, start=start, end=end, width=HOUR))
        return out

    plain = answers()
    ensure_indexes(store)
    assert answers() == plain
    narrow = group_stats(store, start=T0 + 3 * HOUR, end=END, by="agent")
    assert [(g.key, g.requests, g.p50_ms) for g in narrow] == [(None, 1, 4), ("b", 1, 100)]
