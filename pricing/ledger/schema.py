"""The one ledger schema, shared by SQLite and PostgreSQL, and the row codec.

Column names equal :class:`LedgerRow` field names. ``ts`` is stored as integer
microseconds since the Unix epoch (UTC) so both engines sort, index and
compare it exactly; unit prices are decimal strings; money is BIGINT
micro-dollars. Only the placeholder style differs between engines.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pricing.ledger.row import LedgerRow

ROWS_TABLE = "ledger_rows"
HEADS_TABLE = "ledger_chain_heads"
KEYS_TABLE = "api_keys"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LedgerRow))

_INT_COLUMNS = frozenset(
    {
        "attempts",
        "prompt_tokens",
        "cached_prompt_tokens",
        "cache_creation_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "baseline_prompt_tokens",
        "baseline_cached_prompt_tokens",
        "baseline_cache_creation_tokens",
        "baseline_completion_tokens",
        "overhead_cost",
        "cost",
        "baseline_cost",
        "savings",
        "upstream_ms",
        "proxy_ms",
        "http_status",
        "seq",
        "ts",
    }
)
PRICE_COLUMNS = frozenset(
    c
    for c in COLUMNS
    if c.startswith(("price_", "baseline_price_"))
    and c not in ("price_source", "baseline_price_source")
)
_NOT_NULL = frozenset(
    {"request_id", "ts", "tenant", "seq", "prev_hash", "row_hash", "overhead_cost", "attempts"}
)


def _column_type(name: str) -> str:
    base = "BIGINT" if name in _INT_COLUMNS else "TEXT"
    return f"{base} NOT NULL" if name in _NOT_NULL else base


def ddl() -> list[str]:
    """CREATE statements valid on both SQLite and PostgreSQL, idempotent."""
    cols = ",\n  ".join(f"{c} {_column_type(c)}" for c in COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS {ROWS_TABLE} (\n  {cols},\n"
        f"  CONSTRAINT {ROWS_TABLE}_request_id_key UNIQUE (request_id),\n"
        f"  CONSTRAINT {ROWS_TABLE}_tenant_seq_key UNIQUE (tenant, seq)\n)",
        f"CREATE INDEX IF NOT EXISTS {ROWS_TABLE}_tenant_ts_idx ON {ROWS_TABLE} (tenant, ts)",
        f"CREATE INDEX IF NOT EXISTS {ROWS_TABLE}_ts_idx ON {ROWS_TABLE} (ts)",
        f"CREATE TABLE IF NOT EXISTS {HEADS_TABLE} (\n"
        "  tenant TEXT PRIMARY KEY,\n  seq BIGINT NOT NULL,\n  row_hash TEXT NOT NULL\n)",
        f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (\n"
        "  key_id TEXT PRIMARY KEY,\n  key_sha256 TEXT NOT NULL UNIQUE,\n"
        "  tenant TEXT NOT NULL,\n  created_at BIGINT NOT NULL,\n"
        "  revoked BIGINT NOT NULL DEFAULT 0\n)",
    ]


def insert_sql(ph: str) -> str:
    """INSERT of one full row; ``ph`` is the engine's placeholder ("?" or "%s")."""
    return (
        f"INSERT INTO {ROWS_TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(ph for _ in COLUMNS)})"
    )


def select_sql() -> str:
    return f"SELECT {', '.join(COLUMNS)} FROM {ROWS_TABLE}"


def ts_to_us(ts: datetime) -> int:
    """Exact integer microseconds since the epoch of an aware datetime."""
    return (ts - EPOCH) // _ONE_US


def us_to_ts(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def encode(row: LedgerRow) -> tuple[Any, ...]:
    """Database values of ``row`` in :data:`COLUMNS` order."""
    out: list[Any] = []
    for name in COLUMNS:
        value = getattr(row, name)
        if name == "ts":
            value = ts_to_us(value)
        elif isinstance(value, Decimal):
            value = str(value)
        out.append(value)
    return tuple(out)


def decode(values: tuple[Any, ...] | list[Any]) -> LedgerRow:
    """Inverse of :func:`encode`; ValueError names a row that cannot be read."""
    try:
        return _decode(values)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise ValueError(f"ledger row {values[0]!r} cannot be read: {exc}") from exc


def _decode(values: tuple[Any, ...] | list[Any]) -> LedgerRow:
    kwargs: dict[str, Any] = {}
    for name, value in zip(COLUMNS, values, strict=True):
        if value is None:
            kwargs[name] = None
        elif name == "ts":
            kwargs[name] = us_to_ts(int(value))
        elif name in PRICE_COLUMNS:
            kwargs[name] = Decimal(value)
        elif name in _INT_COLUMNS:
            kwargs[name] = int(value)
        else:
            kwargs[name] = value
    return LedgerRow(**kwargs)
