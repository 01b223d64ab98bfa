"""Proxy keys: who is calling, and which tenant pays.

Keys are held only as sha256 digests. A presented key is hashed and looked up
by its digest, so lookup time does not depend on how much of a key an attacker
guessed right (a prefix of a key shares nothing with the key's digest). The
admin key is compared digest to digest with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pricing.ledger.keystore import key_sha256
from proxy.config import AuthConfig, RoutingMode
from proxy.errors import AuthenticationError, PermissionDeniedError

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str | None
    routing_mode: RoutingMode | None = None
    rpm: int | None = None
    tpm: int | None = None


OPEN_PRINCIPAL = Principal(DEFAULT_TENANT, None)


def key_id_of(digest: str) -> str:
    """A stable, non-secret id for a key: a prefix of its digest."""
    return f"key_{digest[:12]}"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in ``Authorization: Bearer``, ``x-api-key`` or ``api-key``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None


class Authenticator:
    """Maps presented keys to principals; open (tenant ``default``) while no key exists."""

    def __init__(
        self,
        auth: AuthConfig | None,
        *,
        stored_keys: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        """``stored_keys``: (sha256, key_id, tenant) of keys created with ``spendgate keys create``."""
        self._admin_digest = key_sha256(auth.admin_key) if auth and auth.admin_key else None
        self._configured: dict[str, Principal] = {}
        for entry in auth.keys if auth else ():
            digest = entry.key_sha256 or key_sha256(entry.key or "")
            self._configured[digest] = Principal(
                entry.tenant,
                entry.name or key_id_of(digest),
                entry.routing_mode,
                entry.rpm,
                entry.tpm,
            )
        self._by_digest = dict(self._configured)
        self._open = True
        self.set_stored_keys(stored_keys)

    def set_stored_keys(self, stored_keys: Iterable[tuple[str, str, str]]) -> None:
        """Make the active stored keys exactly ``stored_keys`` (a revoked key stops working).

        The proxy is open only while it has never known a key: once closed, it
        stays closed even if every key is revoked, so revoking the last key
        never lets keyless clients in.
        """
        by_digest = dict(self._configured)
        for digest, key_id, tenant in stored_keys:
            by_digest.setdefault(digest, Principal(tenant, key_id))
        self._by_digest = by_digest
        self._open = self._open and not by_digest

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if self._open:
            return OPEN_PRINCIPAL
        key = presented_key(headers)
        if key is None:
            raise AuthenticationError("missing proxy key: send it as 'Authorization: Bearer <key>'")
        digest = key_sha256(key)
        principal = self._by_digest.get(digest)
        if principal is None:
            raise AuthenticationError("invalid proxy key")
        return principal

    def authenticate_admin(self, presented: str | None) -> None:
        """Raise unless ``presented`` is the admin key. Proxy keys never pass."""
        if self._admin_digest is None:
            raise PermissionDeniedError("admin endpoints are disabled: set auth.admin_key")
        if presented is None:
            raise AuthenticationError("missing admin key")
        if not hmac.compare_digest(key_sha256(presented), self._admin_digest):
            raise AuthenticationError("invalid admin key")
