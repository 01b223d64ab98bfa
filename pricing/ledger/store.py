"""What the writer, audit, exports and key store need from a ledger database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pricing.ledger.chain import ChainHead
from pricing.ledger.record import Record
from pricing.ledger.row import LedgerRow


@dataclass(frozen=True, slots=True)
class TenantTotals:
    """SQL aggregate of one tenant over one time window.

    ``cost``, ``baseline_cost`` and ``savings`` cover only priced rows (rows
    whose savings are known); ``unpriced_requests`` counts the others.
    """

    tenant: str
    requests: int
    priced_requests: int
    unpriced_requests: int
    cost: int
    baseline_cost: int
    savings: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    key_sha256: str
    tenant: str
    created_at: datetime
    revoked: bool


class LedgerStore(Protocol):
    """A durable, append-only ledger. All methods block: call them off the loop."""

    def write_batch(self, rows: Sequence[LedgerRow]) -> int:
        """Append rows (in order) not already present; return how many were new.

        Chain position (seq, prev_hash, row_hash) is assigned here, inside one
        transaction that serialises writers per tenant. Raises on failure with
        nothing written.
        """
        ...

    def write_records(self, records: Sequence[Record]) -> int:
        """:meth:`write_batch` for records already checked by ``record.check_record``.

        The ledger writer's path: it never builds the rows themselves.
        """
        ...

    def iter_rows(
        self, *, start: datetime, end: datetime, tenant: str | None = None
    ) -> Iterator[LedgerRow]:
        """Rows with start <= ts < end, by (ts, tenant, seq), streamed."""
        ...

    def iter_chain(self, *, tenant: str | None = None) -> Iterator[LedgerRow]:
        """Every row (of ``tenant``), by (tenant, seq), streamed."""
        ...

    def chain_heads(self, *, tenant: str | None = None) -> list[ChainHead]: ...

    def totals(
        self, *, start: datetime, end: datetime, tenant: str | None = None
    ) -> list[TenantTotals]:
        """Per-tenant aggregates over start <= ts < end, by tenant."""
        ...

    def count(self, *, tenant: str | None = None) -> int: ...

    def insert_api_key(self, record: ApiKeyRecord) -> None: ...

    def api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]: ...

    def revoke_api_key(self, key_id: str) -> bool: ...

    def close(self) -> None: ...
