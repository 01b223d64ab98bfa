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

from pricing.ledger.chain import ChainHead, link
from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import (
    HEADS_TABLE,
    KEYS_TABLE,
    ROWS_TABLE,
    decode,
    encode,
    insert_sql,
    select_sql,
    ts_to_us,
    us_to_ts,
)
from pricing.ledger.store import ApiKeyRecord, TenantTotals
from proxy.errors import SpendgateError

_STREAM_CHUNK = 1000


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

    # Engine hooks ---------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection, not in autocommit for writes."""

    @abstractmethod
    def _begin_write(self, cur: Any, tenants: list[str]) -> None:
        """Start the write transaction and serialise on the given tenants."""

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
        if not rows:
            return 0
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                with closing(self._conn.cursor()) as cur:
                    written = self._append(cur, rows)
                self._conn.commit()
                return written
            except self._caught as exc:
                self._drop_connection()
                raise ledger_error("append rows", exc) from exc

    def _append(self, cur: Any, rows: Sequence[LedgerRow]) -> int:
        tenants = sorted({r.tenant for r in rows})
        self._begin_write(cur, tenants)
        clause, params = self._in("request_id", list({r.request_id for r in rows}))
        cur.execute(f"SELECT request_id FROM {ROWS_TABLE} WHERE {clause}", params)
        seen = {r[0] for r in cur.fetchall()}
        fresh: list[LedgerRow] = []
        for row in rows:
            if row.request_id not in seen:
                seen.add(row.request_id)
                fresh.append(row)
        if not fresh:
            return 0
        linked, new_heads = link(fresh, self._heads(cur, tenants))
        cur.executemany(insert_sql(self.ph), [encode(r) for r in linked])
        p = self.ph
        cur.executemany(
            f"INSERT INTO {HEADS_TABLE} (tenant, seq, row_hash) VALUES ({p}, {p}, {p}) "
            "ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, row_hash = excluded.row_hash",
            [(h.tenant, h.seq, h.row_hash) for h in new_heads.values()],
        )
        return len(fresh)

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
        """See :meth:`LedgerStore.totals`."""
        p = self.ph
        params: list[Any] = [ts_to_us(start), ts_to_us(end)]
        where = f"ts >= {p} AND ts < {p}"
        if tenant is not None:
            where += f" AND tenant = {p}"
            params.append(tenant)
        priced = "savings IS NOT NULL"
        sql = (
            f"SELECT tenant, COUNT(*), COALESCE(SUM(CASE WHEN {priced} THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN {priced} THEN cost END), 0), "
            f"COALESCE(SUM(CASE WHEN {priced} THEN baseline_cost END), 0), "
            f"COALESCE(SUM(savings), 0) FROM {ROWS_TABLE} WHERE {where} "
            "GROUP BY tenant ORDER BY tenant"
        )
        out = []
        for t, n, n_priced, cost, baseline, savings in self._query(sql, params):
            out.append(
                TenantTotals(
                    tenant=t,
                    requests=int(n),
                    priced_requests=int(n_priced),
                    unpriced_requests=int(n) - int(n_priced),
                    cost=int(cost),
                    baseline_cost=int(baseline),
                    savings=int(savings),
                )
            )
        return out

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
