"""Fixtures for the ledger tests: real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pricing.ledger import LedgerStore, open_ledger
from tests.pricing.ledger.ledger_testkit import Backend, pg_url_for
from tests.support.postgres import throwaway_schema


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, uniquely named schema, dropped afterwards."""
    with throwaway_schema("ledger_test") as schema:
        yield schema


def _sqlite_backend(path: Path) -> Backend:
    def execute(statement: str) -> list[Any]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return conn.execute(statement).fetchall()
        finally:
            conn.close()

    return Backend("sqlite", f"sqlite:///{path}", execute)


def _pg_backend(schema: str) -> Backend:
    url = pg_url_for(schema)

    def execute(statement: str) -> list[Any]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement.encode())
            return cur.fetchall() if cur.description is not None else []

    return Backend("postgres", url, execute)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite_backend(tmp_path / "ledger.db")
    schema: str = request.getfixturevalue("pg_schema")
    return _pg_backend(schema)


@pytest.fixture
def store(backend: Backend) -> Iterator[LedgerStore]:
    opened = open_ledger(backend.url)
    yield opened
    opened.close()
