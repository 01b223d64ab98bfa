"""Proxy API keys, kept in the ledger database only as SHA-256 hashes.

The plaintext key is shown once, at creation; afterwards a presented key is
recognised by hashing it and looking the hash up.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from pricing.ledger.factory import open_ledger
from pricing.ledger.store import ApiKeyRecord, LedgerStore

KEY_PREFIX = "sg-"

_T = TypeVar("_T")


def key_sha256(plaintext: str) -> str:
    """Hex SHA-256 of a presented key, as stored."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_key(store_or_url: LedgerStore | str, tenant: str) -> tuple[str, str]:
    """Create a key for ``tenant``; return (plaintext key, key_id). Blocking.

    The plaintext is ``sg-`` + 32 random bytes (URL-safe base64) and is not
    stored anywhere.
    """
    if not tenant:
        raise ValueError("a key needs a tenant")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    record = ApiKeyRecord(
        key_id=key_id,
        key_sha256=key_sha256(plaintext),
        tenant=tenant,
        created_at=datetime.now(UTC),
        revoked=False,
    )
    _with_store(store_or_url, lambda s: s.insert_api_key(record))
    return plaintext, key_id


def load_keys(store_or_url: LedgerStore | str) -> list[tuple[str, str, str]]:
    """Active keys as (key_sha256, key_id, tenant). Blocking."""
    records = _with_store(store_or_url, lambda s: s.api_keys())
    return [(r.key_sha256, r.key_id, r.tenant) for r in records]


def revoke_key(store_or_url: LedgerStore | str, key_id: str) -> bool:
    """Revoke a key; False when there is no such active key. Blocking."""
    return _with_store(store_or_url, lambda s: s.revoke_api_key(key_id))


def _with_store(store_or_url: LedgerStore | str, action: Callable[[LedgerStore], _T]) -> _T:
    if not isinstance(store_or_url, str):
        return action(store_or_url)
    store = open_ledger(store_or_url)
    try:
        return action(store)
    finally:
        store.close()
