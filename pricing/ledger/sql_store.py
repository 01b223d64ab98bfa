"""The ledger logic shared by the SQL engines: chained appends, reads, totals.

Engines differ only in how they connect, start a per-tenant-serialising write
transaction, stream a cursor and spell placeholders; the subclasses supply
those. Every engine exception leaves this module as a ``SpendgateError`` with
code ``ledger_unavailable``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, suppress
from datetime import datetime
from typing import Any, ClassVar

from pricing.ledger import rollup
from pricing.ledger.chain import ChainHead, link_records
from pricing.ledger.record import Record, check_record, record_of
from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import (
    COLUMNS,
    HEADS_TABLE,
    KEYS_TABLE,
    ROWS_TABLE,
    decode,
    insert_sql,
    select_sql,
    ts_to_us,
    us_to_ts,
)
from pricing.ledger.store import ApiKeyRecord, TenantTotals
from proxy.errors import SpendgateError

_STREAM_CHUNK = 1000
_TENANT = COLUMNS.index("tenant")


def ledger_error(action: str, exc: BaseException) -> SpendgateError:
    """The one translation of an engine failure into the project's tree."""
    return SpendgateError(
        f"ledger database failed to {action}: {type(exc).__name__}", code="ledger_unavailable"
    )


class SqlLedgerStore(ABC):
    """Engine-neutral implementation of :class:`LedgerStore`."""

    ph: ClassVar[str]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = None
        self._schema_ready = False

    def ensure_schema(self) -> None:
        """Create the schema unless this store already has (idempotent, blocking).

        A store opened while its database was away (``create=False``) calls
        this before its first write, and so on every write until it succeeds:
        the schema appears as soon as the database answers again.
        """
        if not self._schema_ready:
            self._create()
            self._schema_ready = True

    # Engine hooks ---------------------------------------------------------
    @abstractmethod
    def _create(self) -> None:
        """Create every table and index if missing; raise ``ledger_error`` on failure."""

    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection, not in autocommit for writes."""

    @abstractmethod
    def _begin_write(self, cur: Any, tenants: list[str]) -> None:
        """Start the write transaction and serialise on the given tenants."""

    @abstractmethod
    def _begin_exclusive(self, cur: Any) -> None:
        """Start a transaction that waits for, then holds off, every writer."""

    @abstractmethod
    def _begin_snapshot(self, cur: Any) -> None:
        """Start a read-only transaction whose statements all see one snapshot."""

    @abstractmethod
    def _streaming(self) -> AbstractContextManager[Any]:
        """A cursor that fetches lazily, on its own connection."""

    @abstractmethod
    def _in(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """SQL ``column IN values`` and its parameters."""

    @property
    @abstractmethod
    def _errors(self) -> tuple[type[BaseException], ...]:
        """The engine's exception base classes."""

    @property
    def _caught(self) -> tuple[type[BaseException], ...]:
        return (*self._errors, OSError)

    # Writes ---------------------------------------------------------------
    def write_batch(self, rows: Sequence[LedgerRow]) -> int:
        """See :meth:`LedgerStore.write_batch`."""
        return self.write_records([check_record(record_of(r)) for r in rows])

    def write_records(self, records: Sequence[Record]) -> int:
        """See :meth:`LedgerStore.write_records`."""
        if not records:
            return 0
        with self._lock:
            self.ensure_schema()
            try:
                if self._conn is None:
                    self._conn = self._connect()
                with closing(self._conn.cursor()) as cur:
                    written = self._append(cur, records)
                self._conn.commit()
                return written
            except self._caught as exc:
                self._drop_connection()
                raise ledger_error("append rows", exc) from exc

    def _append(self, cur: Any, records: Sequence[Record]) -> int:
        tenants = sorted({r[_TENANT] for r in records})
        self._begin_write(cur, tenants)
        clause, params = self._in("request_id", list({r[0] for r in records}))
        cur.execute(f"SELECT request_id FROM {ROWS_TABLE} WHERE {clause}", params)
        seen = {r[0] for r in cur.fetchall()}
        fresh: list[Record] = []
        for record in records:
            if record[0] not in seen:
                seen.add(record[0])
                fresh.append(record)
        if not fresh:
            return 0
        values, new_heads = link_records(fresh, self._heads(cur, tenants))
        cur.executemany(insert_sql(self.ph), values)
        rollup.apply(cur, self.ph, fresh)
        p = self.ph
        cur.executemany(
            f"INSERT INTO {HEADS_TABLE} (tenant, seq, row_hash) VALUES ({p}, {p}, {p}) "
            "ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, row_hash = excluded.row_hash",
            [(h.tenant, h.seq, h.row_hash) for h in new_heads.values()],
        )
        return len(fresh)

    def rebuild_rollups(self) -> int:
        """Recompute the rollup from every row, excluding writers meanwhile (blocking).

        Needed only after rows were loaded around :meth:`write_batch` (bulk
        loads, restores); returns the number of rows read.
        """
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                with closing(self._conn.cursor()) as cur:
                    self._begin_exclusive(cur)
                    read = rollup.rebuild(cur, self.ph)
                self._conn.commit()
                return read
            except self._caught as exc:
                self._drop_connection()
                raise ledger_error("rebuild the rollup", exc) from exc

    def rollup_discrepancies(self) -> list[str]:
        """Rollup cells that differ from the sums of their rows; empty when exact (blocking).

        Reads rows and rollup in one snapshot, a day at a time, without
        holding off writers. Each entry names one cell.
        """
        out: list[str] = []
        try:
            conn = self._connect()
            try:
                with closing(conn.cursor()) as cur:
                    self._begin_snapshot(cur)
                    checked = 0
                    for day, _, expected in rollup.day_tallies(cur, self.ph):
                        stored = self._stored_cells(cur, day)
                        checked += len(stored)
                        for key in sorted(expected.keys() | stored.keys()):
                            tally = expected.get(key)
                            found = stored.get(key)
                            want = None if tally is None else (tally.counts, tally.hist)
                            if want != found:
                                out.append(f"rollup cell {key}: expected {want}, found {found}")
                    cur.execute(f"SELECT COUNT(*) FROM {rollup.ROLLUP_TABLE}")
                    extra = int(cur.fetchone()[0]) - checked
                    if extra:
                        out.append(f"{extra} rollup cells lie outside the rows' days")
                conn.rollback()
            finally:
                conn.close()
        except self._caught as exc:
            raise ledger_error("check the rollup", exc) from exc
        return out

    def _stored_cells(self, cur: Any, day: int) -> dict[rollup.Key, tuple[list[int], Any]]:
        def run(sql: str, params: Sequence[Any]) -> list[Any]:
            cur.execute(sql, params)
            return list(cur.fetchall())

        out: dict[rollup.Key, tuple[list[int], Any]] = {}
        for kind in rollup.KINDS:
            for grain, lo, hi in (("h", day, day + rollup.DAY_US), ("d", day, day + 1)):
                for t, bucket, a, b, counts, hist in rollup.read_cells(
                    run, self.ph, kind=kind, spans=[(grain, lo, hi)]
                ):
                    out[(kind, grain, bucket, t, a, b)] = (counts, rollup.decode_hist(hist))
        return out

    def _heads(self, cur: Any, tenants: list[str]) -> dict[str, ChainHead]:
        clause, params = self._in("tenant", tenants)
        cur.execute(f"SELECT tenant, seq, row_hash FROM {HEADS_TABLE} WHERE {clause}", params)
        return {t: ChainHead(tenant=t, seq=int(s), row_hash=h) for t, s, h in cur.fetchall()}

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # The connection may already be broken; releasing it is all that is left.
        with suppress(*self._caught):
            conn.rollback()
        with suppress(*self._caught):
            conn.close()

    # Reads ----------------------------------------------------------------
    def iter_rows(
        self, *, start: datetime, end: datetime, tenant: str | None = None
    ) -> Iterator[LedgerRow]:
        """See :meth:`LedgerStore.iter_rows`."""
        p = self.ph
        where = f"ts >= {p} AND ts < {p}"
        params: list[Any] = [ts_to_us(start), ts_to_us(end)]
        if tenant is not None:
            where += f" AND tenant = {p}"
            params.append(tenant)
        sql = f"{select_sql()} WHERE {where} ORDER BY ts, tenant, seq"
        return self._stream(sql, params)

    def iter_chain(self, *, tenant: str | None = None) -> Iterator[LedgerRow]:
        """See :meth:`LedgerStore.iter_chain`."""
        where, params = ("", []) if tenant is None else (f" WHERE tenant = {self.ph}", [tenant])
        return self._stream(f"{select_sql()}{where} ORDER BY tenant, seq", params)

    def _stream(self, sql: str, params: list[Any]) -> Iterator[LedgerRow]:
        try:
            with self._streaming() as cur:
                cur.execute(sql, params)
                while chunk := cur.fetchmany(_STREAM_CHUNK):
                    for values in chunk:
                        yield decode(values)
        except self._caught as exc:
            raise ledger_error("read rows", exc) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            conn = self._connect()
            try:
                with closing(conn.cursor()) as cur:
                    cur.execute(sql, params)
                    result = cur.fetchall() if cur.description is not None else []
                conn.commit()
                return list(result)
            finally:
                conn.close()
        except self._caught as exc:
            raise ledger_error("query", exc) from exc

    def chain_heads(self, *, tenant: str | None = None) -> list[ChainHead]:
        """See :meth:`LedgerStore.chain_heads`."""
        sql = f"SELECT tenant, seq, row_hash FROM {HEADS_TABLE}"
        params = [] if tenant is None else [tenant]
        if tenant is not None:
            sql += f" WHERE tenant = {self.ph}"
        rows = self._query(sql + " ORDER BY tenant", params)
        return [ChainHead(tenant=t, seq=int(s), row_hash=h) for t, s, h in rows]

    def totals(
        self, *, start: datetime, end: datetime, tenant: str | None = None
    ) -> list[TenantTotals]:
        """See :meth:`LedgerStore.totals`: whole hours from the rollup, edges from rows."""
        plan = rollup.plan(ts_to_us(start), ts_to_us(end))
        sums: dict[str, list[int]] = {}
        for t, _, _, _, counts, _ in rollup.read_cells(
            self._query, self.ph, kind="total", spans=plan.rollup, tenant=tenant
        ):
            acc = sums.setdefault(t, [0] * 5)
            for i in range(5):
                acc[i] += counts[i]
        for t, *counts in self._raw_totals(plan.raw, tenant):
            acc = sums.setdefault(t, [0] * 5)
            for i in range(5):
                acc[i] += int(counts[i])
        return [
            TenantTotals(
                tenant=t,
                requests=n,
                priced_requests=n_priced,
                unpriced_requests=n - n_priced,
                cost=cost,
                baseline_cost=baseline,
                savings=savings,
            )
            for t, (n, n_priced, cost, baseline, savings) in sorted(sums.items())
        ]

    def _raw_totals(self, spans: Sequence[tuple[int, int]], tenant: str | None) -> list[Any]:
        """Per-tenant (requests, priced, cost, baseline, savings) of the rows in ``spans``."""
        if not spans:
            return []
        p = self.ph
        priced = "savings IS NOT NULL"
        parts: list[str] = []
        params: list[Any] = []
        for lo, hi in spans:
            where = f"ts >= {p} AND ts < {p}"
            params.extend([lo, hi])
            if tenant is not None:
                where += f" AND tenant = {p}"
                params.append(tenant)
            parts.append(
                f"SELECT tenant, COUNT(*), "
                f"COALESCE(SUM(CASE WHEN {priced} THEN 1 ELSE 0 END), 0), "
                f"COALESCE(SUM(CASE WHEN {priced} THEN cost END), 0), "
                f"COALESCE(SUM(CASE WHEN {priced} THEN baseline_cost END), 0), "
                f"COALESCE(SUM(savings), 0) FROM {ROWS_TABLE} WHERE {where} GROUP BY tenant"
            )
        return self._query(" UNION ALL ".join(parts), params)

    def count(self, *, tenant: str | None = None) -> int:
        """Number of rows (of ``tenant``)."""
        if tenant is None:
            return int(self._query(f"SELECT COUNT(*) FROM {ROWS_TABLE}")[0][0])
        sql = f"SELECT COUNT(*) FROM {ROWS_TABLE} WHERE tenant = {self.ph}"
        return int(self._query(sql, [tenant])[0][0])

    # API keys -------------------------------------------------------------
    def insert_api_key(self, record: ApiKeyRecord) -> None:
        """Store one key's hash (never the key)."""
        p = self.ph
        self._query(
            f"INSERT INTO {KEYS_TABLE} (key_id, key_sha256, tenant, created_at, revoked) "
            f"VALUES ({p}, {p}, {p}, {p}, {p})",
            [
                record.key_id,
                record.key_sha256,
                record.tenant,
                ts_to_us(record.created_at),
                int(record.revoked),
            ],
        )

    def api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        """Stored keys, oldest first."""
        where = "" if include_revoked else " WHERE revoked = 0"
        sql = f"SELECT key_id, key_sha256, tenant, created_at, revoked FROM {KEYS_TABLE}{where}"
        return [
            ApiKeyRecord(
                key_id=k, key_sha256=h, tenant=t, created_at=us_to_ts(int(c)), revoked=bool(r)
            )
            for k, h, t, c, r in self._query(sql + " ORDER BY created_at, key_id")
        ]

    def revoke_api_key(self, key_id: str) -> bool:
        """Mark a key revoked; False when no such active key exists."""
        p = self.ph
        rows = self._query(
            f"UPDATE {KEYS_TABLE} SET revoked = 1 WHERE key_id = {p} AND revoked = 0 "
            "RETURNING key_id",
            [key_id],
        )
        return bool(rows)

    def close(self) -> None:
        """Close the write connection; reads open their own."""
        with self._lock:
            self._drop_connection()
