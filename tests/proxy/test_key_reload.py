"""Stored keys are read again while the proxy runs, and a database outage keeps the ones loaded."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest

from pricing.ledger import LedgerStore
from pricing.ledger.store import ApiKeyRecord
from proxy.errors import AuthenticationError
from proxy.pipeline.auth import Authenticator
from proxy.server.ledger_setup import stored_key_reloader

pytestmark = pytest.mark.anyio


class FlakyKeyStore:
    """Answers ``api_keys`` with what it holds, or fails while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.keys: list[ApiKeyRecord] = []

    def api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        return [k for k in self.keys if include_revoked or not k.revoked]


def record(key: str, tenant: str) -> ApiKeyRecord:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return ApiKeyRecord("key_" + digest[:16], digest, tenant, datetime.now(UTC), False)


def tenant_of(auth: Authenticator, key: str) -> str:
    return auth.authenticate(httpx.Headers({"authorization": f"Bearer {key}"})).tenant


async def test_keys_stored_while_the_database_was_down_are_found_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyKeyStore()
    auth = Authenticator(None, stored_keys=[(record("early", "e").key_sha256, "key_e", "e")])
    reload = stored_key_reloader(cast(LedgerStore, cast(Any, store)), auth, every_s=0.0)
    with caplog.at_level(logging.WARNING, logger="spendgate"):
        for _ in range(3):
            await reload()
    # Down: the keys loaded before stay in force, and the outage is logged once.
    assert tenant_of(auth, "early") == "e"
    assert sum("could not reload stored proxy keys" in r.message for r in caplog.records) == 1

    store.down = False
    store.keys = [record("late", "l")]
    await reload()
    assert tenant_of(auth, "late") == "l"
    with pytest.raises(AuthenticationError):  # no longer among the active keys
        tenant_of(auth, "early")


async def test_keys_are_read_at_most_once_per_interval() -> None:
    store = FlakyKeyStore()
    store.down = False
    store.keys = [record("fresh", "f")]
    auth = Authenticator(None, stored_keys=[(record("old", "o").key_sha256, "key_o", "o")])
    reload = stored_key_reloader(cast(LedgerStore, cast(Any, store)), auth, every_s=3600.0)
    await reload()  # the keys were just loaded at start-up: not read again yet
    assert tenant_of(auth, "old") == "o"
    with pytest.raises(AuthenticationError):
        tenant_of(auth, "fresh")
