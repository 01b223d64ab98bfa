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
from dataclasses import fields
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pricing.ledger.row import CACHE_STATUSES, PRICE_SOURCES, USAGE_SOURCES, LedgerRow
from pricing.ledger.schema import COLUMNS, decode, encode, us_to_ts

CHAIN_COLUMNS = ("seq", "prev_hash", "row_hash")
RECORD_COLUMNS: tuple[str, ...] = COLUMNS[: -len(CHAIN_COLUMNS)]
if COLUMNS[-len(CHAIN_COLUMNS) :] != CHAIN_COLUMNS:  # the slicing above relies on it
    raise RuntimeError("the chain columns must be the last columns of LedgerRow")

Record = tuple[Any, ...]
_NO_CHAIN = (None,) * len(CHAIN_COLUMNS)


_CHOICES = {
    "cache_status": CACHE_STATUSES,
    "usage_source": USAGE_SOURCES,
    "price_source": PRICE_SOURCES,
    "baseline_price_source": PRICE_SOURCES,
}


def _kind(declared: str) -> str:
    if declared == "datetime":
        return "ts"
    if declared.startswith("Decimal"):
        return "price"
    return "int" if declared.startswith("int") else "str"


# (column, kind, nullable, allowed values), from LedgerRow's own declarations.
_CHECKS: tuple[tuple[str, str, bool, frozenset[str] | None], ...] = tuple(
    (f.name, _kind(str(f.type)), "None" in str(f.type), _CHOICES.get(f.name))
    for f in fields(LedgerRow)
    if f.name in RECORD_COLUMNS
)


def _indexes(kind: str, *, nullable: bool) -> tuple[int, ...]:
    return tuple(i for i, c in enumerate(_CHECKS) if c[1] == kind and c[2] == nullable)


_STRS, _OPTIONAL_STRS = _indexes("str", nullable=False), _indexes("str", nullable=True)
_INTS, _OPTIONAL_INTS = _indexes("int", nullable=False), _indexes("int", nullable=True)
_PRICES = _indexes("price", nullable=True)
_TS_AT = RECORD_COLUMNS.index("ts")
_CHOICE_AT = tuple((i, c[3]) for i, c in enumerate(_CHECKS) if c[3] is not None)
if len(_STRS + _OPTIONAL_STRS + _INTS + _OPTIONAL_INTS + _PRICES) + 1 != len(_CHECKS):
    raise RuntimeError("a LedgerRow column has a kind check_record does not know")


def check_record(record: Record) -> Record:
    """The record, checked as :class:`LedgerRow` checks a row, with its values normalised.

    It accepts exactly the records :func:`row_of` accepts and returns
    ``record_of(row_of(record))``, without building the row: integers as
    ``int``, prices as the decimal text of their ``Decimal``. ValueError
    names what is wrong. Values already of their final type (the request
    path's own) cost one type test each.
    """
    if len(record) != len(_CHECKS):
        raise ValueError(f"a ledger record has {len(_CHECKS)} values, not {len(record)}")
    out = list(record)
    for i in _STRS:
        if type(out[i]) is not str:
            out[i] = _converted(record, i)
    for i in _OPTIONAL_STRS:
        if out[i] is not None and type(out[i]) is not str:
            out[i] = _converted(record, i)
    for i in _INTS:
        if type(out[i]) is not int:
            out[i] = _converted(record, i)
    for i in _OPTIONAL_INTS:
        if out[i] is not None and type(out[i]) is not int:
            out[i] = _converted(record, i)
    for i in _PRICES:
        value = out[i]
        if value is not None:
            out[i] = _price(record, i) if type(value) is str else _converted(record, i)
    out[_TS_AT] = _converted(record, _TS_AT)
    for i, allowed in _CHOICE_AT:
        if out[i] not in allowed:
            raise ValueError(
                f"ledger record {record[0]!r}: {_CHECKS[i][0]} must be one of {sorted(allowed)}"
            )
    if not out[0] or not out[_TENANT]:
        raise ValueError("a ledger record needs a request_id and a tenant")
    return tuple(out)


def _price(record: Record, i: int) -> str:
    try:
        return _price_text(record[i])
    except ValueError as exc:
        raise ValueError(f"ledger record {record[0]!r}: {_CHECKS[i][0]} is invalid: {exc}") from exc


def _converted(record: Record, i: int) -> Any:
    name, kind, nullable, _ = _CHECKS[i]
    value = record[i]
    if value is None:
        if nullable:
            return None
        raise ValueError(f"ledger record {record[0]!r}: {name} is required")
    try:
        return _normalised(kind, value)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise ValueError(f"ledger record {record[0]!r}: {name} is invalid: {exc}") from exc


def _normalised(kind: str, value: Any) -> Any:
    if kind == "int":
        return int(value)
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"{type(value).__name__} is not a str")
        return value
    if kind == "price":
        return _decimal_text(value)
    us = int(value)
    _ts_in_range(us)
    return us


def _ts_in_range(us: int) -> None:
    try:
        us_to_ts(us)
    except (ArithmeticError, ValueError) as exc:
        raise ValueError(f"timestamp {us} out of range") from exc


def _decimal_text(value: Any) -> str:
    """A price's decimal text, once it is known to be finite and non-negative."""
    try:
        price = Decimal(value)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a decimal price") from exc
    if not price.is_finite() or price < 0:
        raise ValueError("a price must be a finite, non-negative decimal")
    return str(price)


# Few distinct prices exist, so each text is parsed once. Only texts are
# cached: equal numbers of other types ("2.5" and Decimal("2.50")) would share
# an entry and lose their own spelling.
_price_text = lru_cache(maxsize=4096)(_decimal_text)


_TENANT = RECORD_COLUMNS.index("tenant")


def record_of(row: LedgerRow) -> Record:
    """The record of a row (its chain columns, if any, are dropped)."""
    return encode(row)[: len(RECORD_COLUMNS)]


def row_of(record: Record) -> LedgerRow:
    """The checked row of a record; ValueError names what is wrong with it."""
    if len(record) != len(RECORD_COLUMNS):
        raise ValueError(f"a ledger record has {len(RECORD_COLUMNS)} values, not {len(record)}")
    return decode((*record, *_NO_CHAIN))


def line_record(line: bytes) -> Record:
    """The (unchecked) record a spill-file line holds; ValueError when it holds none."""
    fields_ = json.loads(line)
    if not isinstance(fields_, dict):
        raise ValueError("a spill line must be a JSON object")
    return tuple(fields_.get(name) for name in RECORD_COLUMNS)


def record_line(record: Record) -> bytes:
    """The record as one spill-file line (JSON, ASCII, newline-terminated)."""
    fields = dict(zip(COLUMNS, (*record, *_NO_CHAIN), strict=True))
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


Reject = Callable[[bytes], None]


def checked_records(
    *, records: Iterable[Record] = (), lines: Iterable[bytes] = (), reject: Reject
) -> list[Record]:
    """Checked records (:func:`check_record`) from records and spill lines, in order.

    Each one that cannot become a row goes to ``reject`` as a spill line: it
    would fail the same way on every retry, so it is set aside for a person
    to look at instead.
    """
    out: list[Record] = []
    for record in records:
        try:
            out.append(check_record(record))
        except ValueError:
            reject(_readable_line(record))
    for line in lines:
        try:
            out.append(check_record(line_record(line)))
        except ValueError:
            reject(line if line.endswith(b"\n") else line + b"\n")
    return out


def _readable_line(record: Record) -> bytes:
    try:
        return record_line(record)
    except (TypeError, ValueError):  # not even JSON: keep its repr
        return json.dumps({"unreadable_record": repr(record)}).encode("ascii") + b"\n"
