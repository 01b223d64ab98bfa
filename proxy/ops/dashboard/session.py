"""Dashboard sessions: a signed, expiring token in an HttpOnly cookie.

The cookie never holds the admin key itself. Its token is
``<expiry>.<hmac>``, the HMAC-SHA256 of the expiry under a key derived from
the admin key, so rotating the admin key ends every session, and a proxy key
(or anything else) can neither pass as one nor be turned into one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

COOKIE = "spendgate_admin"
COOKIE_PATH = "/dashboard"
SESSION_TTL = timedelta(hours=12)
_PURPOSE = b"spendgate dashboard session v1"


def _signing_key(admin_key: str) -> bytes:
    return hmac.new(admin_key.encode(), _PURPOSE, hashlib.sha256).digest()


def _signature(admin_key: str, expiry: int) -> str:
    return hmac.new(_signing_key(admin_key), str(expiry).encode(), hashlib.sha256).hexdigest()


def issue(admin_key: str, *, now: datetime, ttl: timedelta = SESSION_TTL) -> str:
    """A session token valid until ``now + ttl``."""
    expiry = int((now + ttl).timestamp())
    return f"{expiry}.{_signature(admin_key, expiry)}"


def valid(token: str | None, admin_key: str, *, now: datetime) -> bool:
    """Whether ``token`` was issued under ``admin_key`` and has not expired."""
    if not token:
        return False
    expiry_text, _, signature = token.partition(".")
    if not expiry_text.isdigit() or len(expiry_text) > 12:
        return False
    expected = _signature(admin_key, int(expiry_text))
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return False
    return int(expiry_text) > now.timestamp()


def cookie_header(token: str, *, max_age: int) -> str:
    """The Set-Cookie value for ``token`` (empty token and 0 max-age log out)."""
    return f"{COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
