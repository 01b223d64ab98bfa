"""A ledger row on its way to the database: the record the request path builds.

A record is a plain tuple of one row's database values (``schema.encode``:
the timestamp in integer microseconds, unit prices as decimal strings) for
every column except the chain's three, which the store assigns when it
appends. Building one costs the request path a tuple; checking it (building
the :class:`LedgerRow`, whose constructor refuses bad values) is left to the
writer, off the request path.

The spill file holds records as JSON lines, one object per row keyed by column
name with the chain columns null: exactly the lines ``spill.row_to_line``
writes for a row that was never stored, so either kind of line replays.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import COLUMNS, decode, encode
from pricing.ledger.spill import line_to_row

CHAIN_COLUMNS = ("seq", "prev_hash", "row_hash")
RECORD_COLUMNS: tuple[str, ...] = COLUMNS[: -len(CHAIN_COLUMNS)]
if COLUMNS[-len(CHAIN_COLUMNS) :] != CHAIN_COLUMNS:  # the slicing above relies on it
    raise RuntimeError("the chain columns must be the last columns of LedgerRow")

Record = tuple[Any, ...]
_NO_CHAIN = (None,) * len(CHAIN_COLUMNS)


def record_of(row: LedgerRow) -> Record:
    """The record of a row (its chain columns, if any, are dropped)."""
    return encode(row)[: len(RECORD_COLUMNS)]


def row_of(record: Record) -> LedgerRow:
    """The checked row of a record; ValueError names what is wrong with it."""
    if len(record) != len(RECORD_COLUMNS):
        raise ValueError(f"a ledger record has {len(RECORD_COLUMNS)} values, not {len(record)}")
    return decode((*record, *_NO_CHAIN))


def record_line(record: Record) -> bytes:
    """The record as one spill-file line (JSON, ASCII, newline-terminated)."""
    fields = dict(zip(COLUMNS, (*record, *_NO_CHAIN), strict=True))
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


Reject = Callable[[bytes], None]


def checked_rows(
    *, records: Iterable[Record] = (), lines: Iterable[bytes] = (), reject: Reject
) -> list[LedgerRow]:
    """Rows from records and spill lines, in order; each unreadable one goes to ``reject``.

    A record that cannot become a row would fail the same way on every retry,
    so it is set aside (as a spill line, for a person to look at) instead.
    """
    rows: list[LedgerRow] = []
    for record in records:
        try:
            rows.append(row_of(record))
        except (ArithmeticError, TypeError, ValueError):
            reject(_readable_line(record))
    for line in lines:
        try:
            rows.append(line_to_row(line))
        except (ArithmeticError, TypeError, ValueError):
            reject(line if line.endswith(b"\n") else line + b"\n")
    return rows


def _readable_line(record: Record) -> bytes:
    try:
        return record_line(record)
    except (TypeError, ValueError):  # not even JSON: keep its repr
        return json.dumps({"unreadable_record": repr(record)}).encode("ascii") + b"\n"
