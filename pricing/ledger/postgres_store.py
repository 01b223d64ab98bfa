"""PostgreSQL ledger (psycopg 3): many proxy replicas may append at once.

A writer locks the chain-head row of every tenant in its batch, in tenant
order (so two writers never deadlock), with ``SELECT ... FOR UPDATE``; the
chain position of each row is therefore decided by exactly one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg

from pricing.ledger import rollup
from pricing.ledger.schema import HEADS_TABLE, ddl
from pricing.ledger.sql_store import SqlLedgerStore, ledger_error

# Arbitrary constant: replicas starting together create the schema one at a time.
_SCHEMA_LOCK_KEY = 0x5EED_1ED6


class PostgresLedgerStore(SqlLedgerStore):
    """Ledger in a PostgreSQL database given by a libpq URL."""

    ph: ClassVar[str] = "%s"

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, create: bool = True) -> None:
        super().__init__()
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        if create:
            self.ensure_schema()

    def _create(self) -> None:
        try:
            with self._connect() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK_KEY])
                found = conn.execute("SELECT to_regclass(%s)", [rollup.ROLLUP_TABLE]).fetchone()
                for statement in [*ddl(), *rollup.ddl(sqlite=False)]:
                    conn.execute(statement)
                if found is None or found[0] is None:
                    # A ledger written before the rollup existed: summarise its rows once.
                    with conn.cursor() as cur:
                        self._begin_exclusive(cur)
                        rollup.rebuild(cur, self.ph)
        except (psycopg.Error, OSError) as exc:
            raise ledger_error("create the schema", exc) from exc

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._url, connect_timeout=max(1, round(self._connect_timeout_s)), autocommit=False
        )

    def _begin_write(self, cur: Any, tenants: list[str]) -> None:
        cur.executemany(
            f"INSERT INTO {HEADS_TABLE} (tenant, seq, row_hash) VALUES (%s, 0, %s) "
            "ON CONFLICT (tenant) DO NOTHING",
            [(t, "0" * 64) for t in tenants],
        )
        cur.execute(
            f"SELECT tenant FROM {HEADS_TABLE} WHERE tenant = ANY(%s) ORDER BY tenant FOR UPDATE",
            [tenants],
        )
        cur.fetchall()

    def _begin_exclusive(self, cur: Any) -> None:
        # Every writer takes a lock on this table first (see _begin_write), so
        # holding EXCLUSIVE waits for writers in flight and holds off new ones.
        cur.execute(f"LOCK TABLE {HEADS_TABLE} IN EXCLUSIVE MODE")

    def _begin_snapshot(self, cur: Any) -> None:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

    @contextmanager
    def _streaming(self) -> Iterator[psycopg.ServerCursor[Any]]:
        with self._connect() as conn, conn.cursor(name=f"ledger_{uuid.uuid4().hex}") as cur:
            cur.itersize = 1000
            yield cur

    def _in(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    @property
    def _errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)
