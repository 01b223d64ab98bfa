"""Per-tenant hash chain: canonical serialisation, row hashes and linking.

Each row's ``row_hash`` is the SHA-256 of the canonical JSON of every field
except ``row_hash`` itself (so ``seq`` and ``prev_hash`` are covered), in the
fixed field order of :class:`LedgerRow`. Values are serialised exactly: ints
as JSON integers, Decimals as their decimal string, the timestamp as ISO-8601
UTC with six fractional digits and "Z", absent values as null.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_text
from typing import Any

from pricing.ledger.record import Record
from pricing.ledger.row import GENESIS_HASH, LedgerRow
from pricing.ledger.schema import COLUMNS

_HASHED_COLUMNS = tuple(c for c in COLUMNS if c != "row_hash")
_PREFIXES = tuple(f'["{name}",' for name in _HASHED_COLUMNS)
_TS = _HASHED_COLUMNS.index("ts")
_TENANT = _HASHED_COLUMNS.index("tenant")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last link of one tenant's chain (seq 0 and zeros before any row)."""

    tenant: str
    seq: int
    row_hash: str


def iso_z(ts: datetime) -> str:
    """ISO-8601 UTC with microseconds and a "Z" suffix."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(
    row: LedgerRow, *, seq: int | None = None, prev_hash: str | None = None
) -> bytes:
    """The exact byte string hashed into ``row_hash``.

    ``seq`` and ``prev_hash``, when given, stand in for the row's own: the
    bytes of the row as it will be linked, without building that row.
    """
    items: list[list[object]] = []
    for name in _HASHED_COLUMNS:
        if name == "seq" and seq is not None:
            value: object = seq
        elif name == "prev_hash" and prev_hash is not None:
            value = prev_hash
        else:
            value = getattr(row, name)
        if isinstance(value, datetime):
            value = iso_z(value)
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, bool) or not (value is None or isinstance(value, int | str)):
            raise TypeError(f"field {name} has a value that cannot be serialised exactly")
        items.append([name, value])
    return json.dumps(items, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def row_hash(row: LedgerRow) -> str:
    """SHA-256 hex of the row's canonical serialisation (prev_hash included)."""
    return hashlib.sha256(canonical_bytes(row)).hexdigest()


def genesis(tenant: str) -> ChainHead:
    return ChainHead(tenant=tenant, seq=0, row_hash=GENESIS_HASH)


def link(
    rows: Iterable[LedgerRow], heads: Mapping[str, ChainHead]
) -> tuple[list[LedgerRow], dict[str, ChainHead]]:
    """Give each row, in order, the next seq and prev_hash of its tenant.

    Returns the linked rows and the new head of every tenant seen. Tenants
    missing from ``heads`` start at genesis.
    """
    current = dict(heads)
    linked: list[LedgerRow] = []
    for row in rows:
        head = current.get(row.tenant) or genesis(row.tenant)
        placed = replace(row, seq=head.seq + 1, prev_hash=head.row_hash, row_hash=None)
        digest = row_hash(placed)
        current[row.tenant] = ChainHead(tenant=row.tenant, seq=head.seq + 1, row_hash=digest)
        linked.append(replace(placed, row_hash=digest))
    return linked, {t: h for t, h in current.items() if t not in heads or h != heads[t]}


def iso_z_us(us: int) -> str:
    """:func:`iso_z` of the UTC instant ``us`` microseconds after the epoch, from the integer."""
    seconds, fraction = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def canonical_record_bytes(record: Record, *, seq: int, prev_hash: str) -> bytes:
    """:func:`canonical_bytes` of the row a checked record becomes at ``seq`` after ``prev_hash``.

    ``record`` must come from ``record.check_record`` (ints, strs and None
    only, the timestamp in microseconds): the bytes are then identical to
    the row's, built without the row and without the general JSON encoder.
    """
    parts: list[str] = []
    for prefix, value in zip(_PREFIXES, (*record, seq, prev_hash), strict=True):
        if value is None:
            parts.append(prefix + "null]")
        elif isinstance(value, str):
            parts.append(prefix + _json_text(value) + "]")
        else:
            parts.append(prefix + str(value) + "]")
    parts[_TS] = _PREFIXES[_TS] + '"' + iso_z_us(record[_TS]) + '"]'
    return ("[" + ",".join(parts) + "]").encode("ascii")


def link_records(
    records: Iterable[Record], heads: Mapping[str, ChainHead]
) -> tuple[list[tuple[Any, ...]], dict[str, ChainHead]]:
    """:func:`link` for checked records: the linked rows' database values, and the new heads."""
    current = dict(heads)
    values: list[tuple[Any, ...]] = []
    for record in records:
        tenant = record[_TENANT]
        head = current.get(tenant) or genesis(tenant)
        seq = head.seq + 1
        canonical = canonical_record_bytes(record, seq=seq, prev_hash=head.row_hash)
        digest = hashlib.sha256(canonical).hexdigest()
        current[tenant] = ChainHead(tenant=tenant, seq=seq, row_hash=digest)
        values.append((*record, seq, head.row_hash, digest))
    return values, {t: h for t, h in current.items() if t not in heads or h != heads[t]}
