"""Fixtures for the dashboard tests: real SQLite files and a real PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pricing.ledger import LedgerStore, open_ledger
from tests.support.postgres import schema_url, throwaway_schema


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh, uniquely named schema, dropped afterwards."""
    with throwaway_schema("dashboard_test") as schema:
        yield schema_url(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    """An empty ledger on each engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened = open_ledger(url)
    try:
        yield opened
    finally:
        opened.close()
