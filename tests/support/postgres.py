"""The real PostgreSQL at 127.0.0.1:5432 for tests: a throwaway schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def require_postgres() -> None:
    """Fail under CI=true when PostgreSQL cannot be reached; skip elsewhere."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")


@contextmanager
def throwaway_schema(prefix: str) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped afterwards."""
    require_postgres()
    schema = f"{prefix}_{uuid.uuid4().hex}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def schema_url(schema: str) -> str:
    return f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
