"""Hourly and daily rollups of the ledger, kept exact at write time.

Every append adds its rows to ``ledger_rollup`` in the same transaction as
the rows themselves, so the rollup is never stale. One rollup row holds the
integer sums of one (kind, grain, bucket, tenant, key) cell:

* kind ``total`` (key empty): the tenant's totals, as the summary counts them;
* kinds ``agent``, ``workflow``, ``served_model`` (key = the tag) and
  ``step`` (key = workflow, step): the dashboard's group statistics, with a
  latency histogram;
* kind ``route`` (key = requested model, served model);
* kinds ``error:<dimension>`` (key = the tag, error type), failed rows only.

Grains are UTC hours (``h``) and UTC days (``d``). A window [start, end)
reads whole days and whole hours from the rollup and only the partial hours
at its edges from raw rows (:func:`plan`), so every aggregate is exact for
arbitrary bounds. Latency percentiles come from fixed buckets
(:data:`LATENCY_BOUNDS`): 1 ms wide below 100 ms, then 5% of their lower
edge wide; a percentile is reported as its bucket's lower edge. Histograms
are keyed by bucket index (position in :data:`LATENCY_BOUNDS`).

Tags are stored as ``"=" + value`` and NULL as ``""``, because NULLs are
never equal inside a primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import add
from typing import Any

from pricing.ledger.histogram import LATENCY_BOUNDS as LATENCY_BOUNDS
from pricing.ledger.histogram import add_hist as add_hist
from pricing.ledger.histogram import decode_hist as decode_hist
from pricing.ledger.histogram import encode_hist, latency_index
from pricing.ledger.histogram import latency_bucket as latency_bucket
from pricing.ledger.record import RECORD_COLUMNS, Record
from pricing.ledger.schema import ROWS_TABLE

ROLLUP_TABLE = "ledger_rollup"
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
GRAINS: tuple[tuple[str, int], ...] = (("h", HOUR_US), ("d", DAY_US))
DIMENSIONS: tuple[str, ...] = ("agent", "workflow", "step", "served_model")
HIST_KINDS = frozenset(DIMENSIONS)
KINDS: tuple[str, ...] = ("total", *DIMENSIONS, "route", *(f"error:{d}" for d in DIMENSIONS))
COUNTERS: tuple[str, ...] = (
    "requests",
    "priced_requests",
    "cost",
    "baseline_cost",
    "savings",
    "tokens",
    "errors",
    "rerouted",
    "upstream_ms",
    "proxy_ms",
    "exact_hits",
    "semantic_hits",
)
# Raw columns a rollup is computed from, in the order the fold reads them.
FIELDS: tuple[str, ...] = (
    "ts",
    "tenant",
    "agent",
    "workflow",
    "step",
    "requested_model",
    "served_model",
    "cache_status",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "baseline_cost",
    "savings",
    "upstream_ms",
    "proxy_ms",
)
_KEY_COLUMNS = ("kind", "grain", "bucket_us", "tenant", "k1", "k2")

Key = tuple[str, str, int, str, str, str]


def tag(value: str | None) -> str:
    """A nullable tag as a primary-key cell."""
    return "" if value is None else "=" + value


def untag(cell: str) -> str | None:
    """Inverse of :func:`tag`."""
    return cell[1:] if cell else None


class Tally:
    """Mutable sums of one rollup cell while a batch is folded."""

    __slots__ = ("counts", "hist")

    def __init__(self) -> None:
        self.counts = [0] * len(COUNTERS)
        self.hist: dict[int, int] = {}

    def add(self, counts: Sequence[int], hist: dict[int, int]) -> None:
        """Add another cell's sums to this one."""
        if counts:
            self.counts = list(map(add, self.counts, counts))
        for bucket, n in hist.items():
            self.hist[bucket] = self.hist.get(bucket, 0) + n


_RECORD_FIELDS = tuple(RECORD_COLUMNS.index(f) for f in FIELDS)


def record_values(record: Record) -> tuple[Any, ...]:
    """The :data:`FIELDS` of a checked record (``pricing.ledger.record``)."""
    return tuple(record[i] for i in _RECORD_FIELDS)


def _measures(v: Sequence[Any]) -> tuple[list[int], int]:
    """One row's counter values (the summary's NULL rules) and latency bucket."""
    (_, _, _, _, _, requested, served, cache, error, prompt, completion) = v[:11]
    cost, baseline, savings, upstream, proxy = v[11:]
    priced = savings is not None
    counts = [
        1,
        int(priced),
        cost if priced and cost is not None else 0,
        baseline if priced and baseline is not None else 0,
        savings if priced else 0,
        prompt + completion if prompt is not None and completion is not None else 0,
        int(error is not None),
        int(served is not None and requested is not None and served != requested),
        upstream or 0,
        proxy or 0,
        int(cache == "exact"),
        int(cache == "semantic"),
    ]
    latency = 0 if proxy is None else (upstream or 0) + proxy
    return counts, latency_index(latency)


def _cells(v: Sequence[Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, k1, k2) of every rollup cell one row belongs to."""
    _, _, agent, workflow, step, requested, served, _, error = v[:9]
    tags = {"agent": tag(agent), "workflow": tag(workflow), "step": tag(step)}
    tags["served_model"] = tag(served)
    yield "total", "", ""
    yield "agent", tags["agent"], ""
    yield "workflow", tags["workflow"], ""
    yield "step", tags["workflow"], tags["step"]
    yield "served_model", tags["served_model"], ""
    yield "route", tag(requested), tags["served_model"]
    if error is not None:
        for dim in DIMENSIONS:
            yield f"error:{dim}", tags[dim], error


Slots = Callable[[int], Iterable[tuple[str, int]]]


def grain_slots(ts_us: int) -> tuple[tuple[str, int], ...]:
    """The hour and the day ``ts_us`` falls in."""
    return tuple((g, ts_us - ts_us % width) for g, width in GRAINS)


def fold(
    values: Iterable[Sequence[Any]],
    *,
    slots: Slots = grain_slots,
    kinds: frozenset[str] | None = None,
    into: dict[Key, Tally] | None = None,
) -> dict[Key, Tally]:
    """Sum rows (:data:`FIELDS` tuples) into rollup cells, optionally of some kinds only.

    Rows that fall in the same slots with the same tags are summed first, so
    a batch of similar requests costs one pass over its cells, not one per row.
    """
    out: dict[Key, Tally] = {} if into is None else into
    groups: dict[tuple[Any, ...], tuple[list[int], dict[int, int]]] = {}
    for v in values:
        counts, bucket = _measures(v)
        key = (tuple(slots(int(v[0]))), *v[1:9])
        group = groups.get(key)
        if group is None:
            groups[key] = (counts, {bucket: 1})
        else:
            group[0][:] = map(add, group[0], counts)
            group[1][bucket] = group[1].get(bucket, 0) + 1
    for (spans, *tags), (counts, hist) in groups.items():
        cells = [c for c in _cells((None, *tags)) if kinds is None or c[0] in kinds]
        for grain, start in spans:
            for kind, k1, k2 in cells:
                cell = (kind, grain, start, tags[0], k1, k2)
                tally = out.get(cell)
                if tally is None:
                    tally = out[cell] = Tally()
                tally.add(counts, hist if kind in HIST_KINDS else {})
    return out


# Schema and writes ---------------------------------------------------------
def ddl(*, sqlite: bool) -> list[str]:
    """The rollup table, idempotent; clustered by its key on SQLite."""
    sums = ",\n  ".join(f"{c} BIGINT NOT NULL" for c in COUNTERS)
    return [
        f"CREATE TABLE IF NOT EXISTS {ROLLUP_TABLE} (\n"
        "  kind TEXT NOT NULL,\n  grain TEXT NOT NULL,\n  bucket_us BIGINT NOT NULL,\n"
        "  tenant TEXT NOT NULL,\n  k1 TEXT NOT NULL,\n  k2 TEXT NOT NULL,\n"
        f"  {sums},\n  hist TEXT NOT NULL,\n"
        f"  PRIMARY KEY ({', '.join(_KEY_COLUMNS)})\n)" + (" WITHOUT ROWID" if sqlite else "")
    ]


def upsert_sql(ph: str) -> str:
    """Add one cell's sums; ``hist`` arrives already merged with the stored one."""
    columns = (*_KEY_COLUMNS, *COUNTERS, "hist")
    adds = ", ".join(f"{c} = {ROLLUP_TABLE}.{c} + excluded.{c}" for c in COUNTERS)
    return (
        f"INSERT INTO {ROLLUP_TABLE} ({', '.join(columns)}) "
        f"VALUES ({', '.join(ph for _ in columns)}) "
        f"ON CONFLICT ({', '.join(_KEY_COLUMNS)}) DO UPDATE SET {adds}, hist = excluded.hist"
    )


def _params(key: Key, tally: Tally) -> tuple[Any, ...]:
    return (*key, *tally.counts, encode_hist(tally.hist))


def apply(cur: Any, ph: str, records: Sequence[Record]) -> None:
    """Add freshly inserted (checked) ``records`` to the rollup, inside the caller's transaction.

    The caller holds the write lock of every tenant in ``records`` (and every
    cell is one tenant's), so reading a histogram, merging and writing it
    back cannot interleave with another writer of the same cell.
    """
    tallies = fold(record_values(r) for r in records)
    groups: dict[tuple[str, str, int, str], list[Key]] = {}
    for key in tallies:
        if key[0] in HIST_KINDS:
            groups.setdefault(key[:4], []).append(key)
    for (kind, grain, start, tenant), keys in groups.items():
        cur.execute(
            f"SELECT k1, k2, hist FROM {ROLLUP_TABLE} WHERE kind = {ph} AND grain = {ph} "
            f"AND bucket_us = {ph} AND tenant = {ph}",
            [kind, grain, start, tenant],
        )
        stored = {(k1, k2): hist for k1, k2, hist in cur.fetchall()}
        for key in keys:
            old = stored.get((key[4], key[5]))
            if old:
                tallies[key].add((), decode_hist(old))
    cur.executemany(upsert_sql(ph), [_params(k, t) for k, t in tallies.items()])


def rebuild(cur: Any, ph: str) -> int:
    """Recompute the whole rollup from the rows, one UTC day at a time.

    The caller holds the ledger's write lock. Idempotent: the rollup is
    emptied first. Returns the number of rows read.
    """
    cur.execute(f"DELETE FROM {ROLLUP_TABLE}")
    read = 0
    for _, count, tallies in day_tallies(cur, ph):
        read += count
        if tallies:
            cur.executemany(upsert_sql(ph), [_params(k, t) for k, t in tallies.items()])
    return read


def day_tallies(cur: Any, ph: str) -> Iterator[tuple[int, int, dict[Key, Tally]]]:
    """(day, rows read, the day's cells) for each UTC day from the first row to the last."""
    cur.execute(f"SELECT MIN(ts), MAX(ts) FROM {ROWS_TABLE}")
    first, last = cur.fetchone()
    if first is None:
        return
    day = int(first) - int(first) % DAY_US
    while day <= int(last):
        tallies: dict[Key, Tally] = {}
        read = 0
        # An hour per query keeps client-side result sets small on any engine.
        for hour in range(day, day + DAY_US, HOUR_US):
            cur.execute(
                f"SELECT {', '.join(FIELDS)} FROM {ROWS_TABLE} WHERE ts >= {ph} AND ts < {ph}",
                [hour, hour + HOUR_US],
            )
            chunk = cur.fetchall()
            read += len(chunk)
            fold(chunk, into=tallies)
        yield day, read, tallies
        day += DAY_US


# Reads ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Plan:
    """How to read [start, end): rollup (grain, from, to) spans and raw (from, to) spans."""

    rollup: tuple[tuple[str, int, int], ...]
    raw: tuple[tuple[int, int], ...]


def _floor(us: int, width: int) -> int:
    return us - us % width


def _ceil(us: int, width: int) -> int:
    return -_floor(-us, width)


def plan(start_us: int, end_us: int) -> Plan:
    """Whole days, then whole hours, from the rollup; the partial hours from raw rows."""
    if end_us <= start_us:
        return Plan((), ())
    h0, h1 = _ceil(start_us, HOUR_US), _floor(end_us, HOUR_US)
    if h0 >= h1:
        return Plan((), ((start_us, end_us),))
    raw = tuple(s for s in ((start_us, h0), (h1, end_us)) if s[0] < s[1])
    d0, d1 = _ceil(h0, DAY_US), _floor(h1, DAY_US)
    if d0 >= d1:
        return Plan((("h", h0, h1),), raw)
    spans = (("h", h0, d0), ("d", d0, d1), ("h", d1, h1))
    return Plan(tuple(s for s in spans if s[1] < s[2]), raw)


Run = Callable[[str, Sequence[Any]], list[Any]]


def read_cells(
    run: Run,
    ph: str,
    *,
    kind: str,
    spans: Sequence[tuple[str, int, int]],
    tenant: str | None = None,
    k1: str | None = None,
) -> list[tuple[str, int, str, str, list[int], str]]:
    """Stored cells of ``kind`` in ``spans``: (tenant, bucket_us, k1, k2, counts, hist)."""
    if not spans:
        return []
    extra, extra_params = "", []
    for column, value in (("tenant", tenant), ("k1", k1)):
        if value is not None:
            extra += f" AND {column} = {ph}"
            extra_params.append(value)
    parts, params = [], []
    for grain, lo, hi in spans:
        parts.append(
            f"SELECT tenant, bucket_us, k1, k2, {', '.join(COUNTERS)}, hist FROM {ROLLUP_TABLE} "
            f"WHERE kind = {ph} AND grain = {ph} AND bucket_us >= {ph} AND bucket_us < {ph}" + extra
        )
        params.extend([kind, grain, lo, hi, *extra_params])
    n = len(COUNTERS)
    return [
        (r[0], int(r[1]), r[2], r[3], [int(x) for x in r[4 : 4 + n]], r[4 + n])
        for r in run(" UNION ALL ".join(parts), params)
    ]


def read_raw(
    run: Run,
    ph: str,
    *,
    spans: Sequence[tuple[int, int]],
    tenant: str | None = None,
    workflow: str | None = None,
) -> list[Any]:
    """Raw :data:`FIELDS` tuples of the rows in ``spans`` (optionally of one tenant, workflow)."""
    if not spans:
        return []
    extra, extra_params = "", []
    for column, value in (("tenant", tenant), ("workflow", workflow)):
        if value is not None:
            extra += f" AND {column} = {ph}"
            extra_params.append(value)
    parts, params = [], []
    for lo, hi in spans:
        parts.append(
            f"SELECT {', '.join(FIELDS)} FROM {ROWS_TABLE} WHERE ts >= {ph} AND ts < {ph}" + extra
        )
        params.extend([lo, hi, *extra_params])
    return run(" UNION ALL ".join(parts), params)
