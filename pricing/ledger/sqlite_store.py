"""SQLite ledger (WAL): one file, writers serialised by BEGIN IMMEDIATE.

``path=None`` keeps the ledger in memory for the life of the store (tests and
throw-away runs): a shared-cache in-memory database, held open by one
connection so that the store's other connections see the same data.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from pricing.ledger import rollup
from pricing.ledger.schema import ddl
from pricing.ledger.sql_store import SqlLedgerStore, ledger_error


class SqliteLedgerStore(SqlLedgerStore):
    """Ledger in one SQLite file; safe for many threads and processes on one host."""

    ph: ClassVar[str] = "?"

    def __init__(
        self, path: Path | None, *, busy_timeout_s: float = 5.0, create: bool = True
    ) -> None:
        super().__init__()
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._keeper: sqlite3.Connection | None = None
        if path is None:
            self._target = f"file:spendgate-ledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self._keeper = self._connect()
        else:
            self._target = str(path)
        if create:
            self.ensure_schema()

    def _create(self) -> None:
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                if self.path is not None:
                    # WAL lets exports and audits read while the writer appends.
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                fresh = not conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    [rollup.ROLLUP_TABLE],
                ).fetchone()
                for statement in [*ddl(), *rollup.ddl(sqlite=True)]:
                    conn.execute(statement)
                if fresh:
                    # A ledger written before the rollup existed: summarise its rows once.
                    rollup.rebuild(conn.cursor(), self.ph)
                conn.commit()
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise ledger_error("create the schema", exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._target,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            uri=self.path is None,
        )
        # A billing record must survive power loss, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _begin_write(self, cur: Any, tenants: list[str]) -> None:
        # IMMEDIATE takes the database write lock up front: every writer, in
        # any process, is serialised, which serialises each tenant's chain.
        cur.execute("BEGIN IMMEDIATE")

    def _begin_exclusive(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def _begin_snapshot(self, cur: Any) -> None:
        # In WAL mode a read transaction sees one snapshot from its first read.
        cur.execute("BEGIN")

    @contextmanager
    def _streaming(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connect()
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            conn.close()

    def _in(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} IN ({', '.join('?' for _ in values)})", list(values)

    @property
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def close(self) -> None:
        """Close the write connection (and drop an in-memory ledger)."""
        super().close()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
