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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing.ledger.row import GENESIS_HASH, LedgerRow
from pricing.ledger.schema import COLUMNS, encode

_HASHED_COLUMNS = tuple(c for c in COLUMNS if c != "row_hash")


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


def link_values(
    rows: Iterable[LedgerRow], heads: Mapping[str, ChainHead]
) -> tuple[list[tuple[Any, ...]], dict[str, ChainHead]]:
    """:func:`link`, as the database values of the linked rows (``schema.encode`` order).

    The store needs only those values; skipping the two linked copies of each
    row that :func:`link` builds (and checks) halves the writer's work.
    """
    current = dict(heads)
    values: list[tuple[Any, ...]] = []
    for row in rows:
        head = current.get(row.tenant) or genesis(row.tenant)
        seq = head.seq + 1
        digest = hashlib.sha256(canonical_bytes(row, seq=seq, prev_hash=head.row_hash)).hexdigest()
        current[row.tenant] = ChainHead(tenant=row.tenant, seq=seq, row_hash=digest)
        values.append((*encode(row)[:-3], seq, head.row_hash, digest))
    return values, {t: h for t, h in current.items() if t not in heads or h != heads[t]}
