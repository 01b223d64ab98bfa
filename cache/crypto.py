"""Optional encryption at rest for cached answers: AES-GCM.

A stored value is ``nonce (12 bytes) || ciphertext+tag``. The cache key is
the associated data, so a ciphertext copied under another key fails to
decrypt. Decryption failures (wrong key, tampering, plaintext left from
before encryption was turned on) read as a miss, never as an error.

AES-GCM comes from the ``cryptography`` package, which is an optional extra;
asking for encryption without it is a configuration error at start-up.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any, Final, Protocol

from proxy.errors import ConfigError

NONCE_BYTES: Final = 12
_KEY_SIZES: Final = frozenset({16, 24, 32})


class Encryptor(Protocol):
    """Seals and opens cache values, bound to their cache key."""

    def encrypt(self, plaintext: bytes, *, associated: bytes) -> bytes:
        """Sealed bytes for ``plaintext``."""
        ...

    def decrypt(self, sealed: bytes, *, associated: bytes) -> bytes | None:
        """The plaintext, or None when ``sealed`` does not open with this key."""
        ...


class AesGcmEncryptor:
    """AES-GCM with a random 96-bit nonce per value."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in _KEY_SIZES:
            raise ConfigError(["cache.encryption_key: must decode to 16, 24 or 32 bytes"])
        try:
            from cryptography.exceptions import (  # type: ignore[import-not-found, unused-ignore]
                InvalidTag,
            )
            from cryptography.hazmat.primitives.ciphers.aead import (  # type: ignore[import-not-found, unused-ignore]
                AESGCM,
            )
        except ImportError as exc:
            raise ConfigError(
                [
                    "cache.encryption_key: encryption at rest needs the 'cryptography' "
                    "package; install spendgate with the 'encryption' extra"
                ]
            ) from exc
        self._aead: Any = AESGCM(key)
        self._invalid_tag: type[Exception] = InvalidTag

    def encrypt(self, plaintext: bytes, *, associated: bytes) -> bytes:
        """``nonce || ciphertext`` for ``plaintext``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed: bytes = self._aead.encrypt(nonce, plaintext, associated)
        return nonce + sealed

    def decrypt(self, sealed: bytes, *, associated: bytes) -> bytes | None:
        """The plaintext, or None for anything this key did not seal."""
        if len(sealed) <= NONCE_BYTES:
            return None
        try:
            plaintext: bytes = self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated
            )
        except (self._invalid_tag, ValueError, OverflowError):
            return None
        return plaintext


def encryptor_from_secret(secret: str | None) -> AesGcmEncryptor | None:
    """An encryptor for a base64 (standard or URL-safe) key, None when unset."""
    if secret is None or not secret.strip():
        return None
    text = secret.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(["cache.encryption_key: not valid base64"]) from exc
    return AesGcmEncryptor(key)
