"""Dashboard query and page-render times on a large synthetic ledger.

    python -m bench.dashboard_queries [--rows 1000000] [--backend sqlite|postgresql|both]
                                      [--pg-url postgresql://postgres@127.0.0.1:5432/test]
                                      [--repeat 3] [--json out.json]

Rows are bulk-loaded straight into the ledger table (no hash chain: the
dashboard never reads it) of a throw-away SQLite file or a throw-away
PostgreSQL schema, both removed afterwards. They span the 30 days before the
run over 3 tenants, 40 agents, 25 workflows of 8 steps and 6 models; the
rollup is then rebuilt from them (the load bypasses ``write_batch``, which
maintains it). Each panel query and each page render is timed for the 1h,
24h, 7d and 30d periods and a custom window whose edges fall mid-hour; the
best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from pricing.ledger.analytics import ensure_indexes, error_counts, group_stats, route_counts
from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import ROWS_TABLE, ts_to_us
from pricing.ledger.sql_store import SqlLedgerStore
from pricing.ledger.sqlite_store import SqliteLedgerStore
from pricing.ledger.store import LedgerStore
from pricing.ledger.summary import summary
from pricing.ledger.timeseries import timeseries as series
from proxy.ops.dashboard.pages import PAGES, PageContext, render_workflow
from proxy.ops.dashboard.window import window_for

FEE_RATE = Decimal("0.10")
LOAD_COLUMNS = (
    "request_id", "ts", "tenant", "key_id", "agent", "workflow", "step", "run",
    "requested_model", "served_model", "baseline_model", "provider", "cache_status",
    "route_reason", "attempts", "attempts_detail", "prompt_tokens", "completion_tokens",
    "usage_source", "price_source", "overhead_cost", "cost", "baseline_cost", "savings",
    "catalog_version", "upstream_ms", "proxy_ms", "http_status", "error_type", "seq",
    "prev_hash", "row_hash",
)  # fmt: skip
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-70b", "o3-mini")
CACHE = ("miss",) * 70 + ("exact",) * 15 + ("semantic",) * 8 + ("bypass",) * 7
ERRORS = ("upstream_error", "rate_limit_error", "timeout_error")


@dataclass(frozen=True, slots=True)
class Timing:
    backend: str
    rows: int
    period: str
    what: str
    ms: float


def synthetic_rows(count: int, *, end: datetime, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``count`` plausible ledger rows over the 30 days before ``end``."""
    rng = random.Random(seed)
    span_us = ts_to_us(end) - ts_to_us(end - timedelta(days=30))
    end_us = ts_to_us(end)
    seqs: dict[str, int] = {}
    for i in range(count):
        tenant = f"tenant-{i % 3}"
        seqs[tenant] = seqs.get(tenant, 0) + 1
        requested = MODELS[rng.randrange(len(MODELS))]
        served = requested if rng.random() < 0.6 else MODELS[rng.randrange(len(MODELS))]
        cache = CACHE[rng.randrange(len(CACHE))]
        failed = rng.random() < 0.03
        prompt, completion = rng.randrange(50, 4000), rng.randrange(10, 800)
        baseline = prompt * 3 + completion * 12
        cost = 0 if cache in ("exact", "semantic") else prompt + completion * 4
        priced = rng.random() < 0.98
        upstream = None if cache in ("exact", "semantic") else int(rng.lognormvariate(6, 0.8))
        workflow = rng.randrange(25)
        yield (
            f"req-{i:09d}", end_us - rng.randrange(span_us), tenant, f"key-{i % 7}",
            f"agent-{rng.randrange(40)}", f"workflow-{workflow}", f"step-{rng.randrange(8)}",
            f"run-{i // 20}", requested, served, requested, "openai", cache, "complexity",
            1, "[]", prompt, completion, "upstream", "catalog", 0,
            cost if priced else None, baseline if priced else None,
            baseline - cost if priced else None, "2026-11", upstream, rng.randrange(1, 40),
            502 if failed else 200, ERRORS[i % 3] if failed else None, seqs[tenant],
            "a" * 64, "b" * 64,
        )  # fmt: skip


def load_sqlite(path: Path, count: int, *, end: datetime) -> LedgerStore:
    store = SqliteLedgerStore(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        marks = ", ".join("?" for _ in LOAD_COLUMNS)
        conn.executemany(
            f"INSERT INTO {ROWS_TABLE} ({', '.join(LOAD_COLUMNS)}) VALUES ({marks})",
            synthetic_rows(count, end=end),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return store


def load_postgres(url: str, schema: str, count: int, *, end: datetime) -> LedgerStore:
    import psycopg

    from pricing.ledger.postgres_store import PostgresLedgerStore

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    store = PostgresLedgerStore(scoped)
    with (
        psycopg.connect(scoped, autocommit=True) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY {ROWS_TABLE} ({', '.join(LOAD_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in synthetic_rows(count, end=end):
            copy.write_row(row)
    return store


def drop_postgres(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def vacuum_postgres(url: str, schema: str) -> None:
    """Set the visibility map so the covering index answers alone, as autovacuum would."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'VACUUM ANALYZE "{schema}".{ROWS_TABLE}')


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - began) * 1000)
    return best


def measure(
    backend: str, store: LedgerStore, rows: int, *, now: datetime, repeat: int
) -> list[Timing]:
    """Time every panel query and page render for each period, and appends."""
    out: list[Timing] = []
    custom = (
        now - timedelta(days=19, hours=7, minutes=13, seconds=5),
        now - timedelta(minutes=161),
    )
    for period in ("1h", "24h", "7d", "30d", "custom"):
        if period == "custom":
            iso = [t.isoformat().replace("+00:00", "Z") for t in custom]
            win = window_for(period, now=now, start=iso[0], end=iso[1])
        else:
            win = window_for(period, now=now)
        ctx = PageContext(store=store, window=win, fee_rate=FEE_RATE, budgets=())
        cases: dict[str, Callable[[], object]] = {
            "query summary totals": partial(
                summary, store, start=win.start, end=win.end, fee_rate=FEE_RATE, period="all"
            ),
            "query timeseries": partial(
                series, store, start=win.start, end=win.end, width=win.bucket
            ),
            "query agents": partial(group_stats, store, start=win.start, end=win.end, by="agent"),
            "query workflows": partial(
                group_stats, store, start=win.start, end=win.end, by="workflow"
            ),
            "query steps of one workflow": partial(
                group_stats, store, start=win.start, end=win.end, by="step", workflow="workflow-3"
            ),
            "query models": partial(
                group_stats, store, start=win.start, end=win.end, by="served_model"
            ),
            "query model errors": partial(
                error_counts, store, start=win.start, end=win.end, by="served_model"
            ),
            "query routes": partial(route_counts, store, start=win.start, end=win.end),
        }
        for name, render in PAGES.items():
            cases[f"page {name}"] = partial(render, ctx)
        cases["page workflow/workflow-3"] = partial(render_workflow, ctx, "workflow-3")
        for what, fn in cases.items():
            ms = best_ms(fn, repeat)
            out.append(Timing(backend, rows, period, what, round(ms, 1)))
            print(f"{backend:<11} {rows:>9} {period:>4}  {what:<30} {ms:9.1f} ms", flush=True)
    return out


def measure_writes(
    backend: str, store: LedgerStore, rows: int, *, now: datetime, batches: int = 40
) -> Timing:
    """Mean time of one 50-row ``write_batch`` (rows, chain and rollup) on the loaded ledger."""
    began = time.perf_counter()
    for b in range(batches):
        store.write_batch(
            [
                LedgerRow(
                    request_id=f"bench-write-{b}-{i}",
                    ts=now - timedelta(seconds=b, microseconds=i),
                    tenant=f"bench-writer-{i % 3}",
                    agent=f"agent-{i % 40}",
                    workflow=f"workflow-{i % 25}",
                    step=f"step-{i % 8}",
                    requested_model=MODELS[i % 6],
                    served_model=MODELS[(i * 7) % 6],
                    cost=100,
                    baseline_cost=300,
                    savings=200,
                    upstream_ms=400 + i,
                    proxy_ms=3,
                )
                for i in range(50)
            ]
        )
    ms = (time.perf_counter() - began) * 1000 / batches
    print(f"{backend:<11} {rows:>9}  write_batch of 50 rows {ms:9.1f} ms", flush=True)
    return Timing(backend, rows, "-", "write_batch of 50 rows", round(ms, 1))


def run_backend(backend: str, rows: int, *, pg_url: str, repeat: int) -> list[Timing]:
    """Load ``rows`` into a throw-away ledger of ``backend``, index it, time it, drop it."""
    now = datetime.now(UTC).replace(microsecond=0)
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="spendgate-bench-") as tmp:
            began = time.perf_counter()
            store = load_sqlite(Path(tmp) / "ledger.db", rows, end=now)
            return _indexed_run(backend, store, rows, now=now, repeat=repeat, began=began)
    schema = f"bench_dashboard_{uuid.uuid4().hex[:12]}"
    try:
        began = time.perf_counter()
        store = load_postgres(pg_url, schema, rows, end=now)
        return _indexed_run(
            backend, store, rows, now=now, repeat=repeat, began=began,
            after_index=lambda: vacuum_postgres(pg_url, schema),
        )  # fmt: skip
    finally:
        drop_postgres(pg_url, schema)


def _indexed_run(
    backend: str,
    store: LedgerStore,
    rows: int,
    *,
    now: datetime,
    repeat: int,
    began: float,
    after_index: Callable[[], None] | None = None,
) -> list[Timing]:
    print(f"{backend}: loaded {rows} rows in {time.perf_counter() - began:.1f} s", flush=True)
    try:
        rebuilt = time.perf_counter()
        assert isinstance(store, SqlLedgerStore)
        store.rebuild_rollups()
        print(f"{backend}: rollup rebuilt in {time.perf_counter() - rebuilt:.1f} s", flush=True)
        indexed = time.perf_counter()
        ensure_indexes(store)
        if after_index is not None:
            after_index()
        print(f"{backend}: indexes ready in {time.perf_counter() - indexed:.1f} s", flush=True)
        timings = measure(backend, store, rows, now=now, repeat=repeat)
        return [*timings, measure_writes(backend, store, rows, now=now)]
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    timings: list[Timing] = []
    for backend in backends:
        timings.extend(run_backend(backend, args.rows, pg_url=args.pg_url, repeat=args.repeat))
    worst = max(timings, key=lambda t: t.ms)
    print(f"slowest: {worst.backend} {worst.period} {worst.what} {worst.ms} ms")
    if args.json:
        args.json.write_text(json.dumps([asdict(t) for t in timings], indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
