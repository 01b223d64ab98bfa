"""The durable, hash-chained billing ledger: one append-only row per request."""

from __future__ import annotations

from pricing.cost import fee_micro, format_micro
from pricing.ledger.audit import AuditReport, Discrepancy, audit, format_audit
from pricing.ledger.chain import ChainHead, canonical_bytes, row_hash
from pricing.ledger.export import CSV_COLUMNS, aiter_csv, iter_csv, write_csv
from pricing.ledger.factory import open_ledger
from pricing.ledger.keystore import create_key, key_sha256, load_keys, revoke_key
from pricing.ledger.row import (
    GENESIS_HASH,
    LedgerRow,
    RowCosts,
    costs_from,
    expected_costs,
    with_costs,
)
from pricing.ledger.store import ApiKeyRecord, LedgerStore, TenantTotals
from pricing.ledger.summary import SUMMARY_COLUMNS, SummaryRow, summary, summary_csv
from pricing.ledger.writer import LedgerWriter

__all__ = [
    "CSV_COLUMNS",
    "GENESIS_HASH",
    "SUMMARY_COLUMNS",
    "ApiKeyRecord",
    "AuditReport",
    "ChainHead",
    "Discrepancy",
    "LedgerRow",
    "LedgerStore",
    "LedgerWriter",
    "RowCosts",
    "SummaryRow",
    "TenantTotals",
    "aiter_csv",
    "audit",
    "canonical_bytes",
    "costs_from",
    "create_key",
    "expected_costs",
    "fee_micro",
    "format_audit",
    "format_micro",
    "iter_csv",
    "key_sha256",
    "load_keys",
    "open_ledger",
    "revoke_key",
    "row_hash",
    "summary",
    "summary_csv",
    "with_costs",
    "write_csv",
]
