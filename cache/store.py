"""The storage protocol every response-cache backend implements.

Backends hold opaque bytes under string keys and offer the small lock
primitive cross-process coalescing needs. A backend never raises into the
request path: a failing backend answers as a miss, a refused write or an
unknown lock state, and counts the failure in its :class:`StoreStats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What /readyz and /metrics report about a backend.

    ``ok`` is False while the backend is known to be failing (its breaker is
    open); the proxy still serves requests then, only without the cache.
    """

    backend: str
    ok: bool
    breaker: str


@dataclass(slots=True)
class StoreStats:
    """Monotonic counters of one backend, read by the metrics exporter."""

    gets: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0
    timeouts: int = 0
    rejected: int = 0
    evictions: int = 0


@runtime_checkable
class CacheStore(Protocol):
    """Bytes by key with TTLs, plus a token-owned lock with an expiry."""

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``; None when absent, expired or unreachable."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store ``value`` for ``ttl_s`` seconds (None: the backend default).

        Returns whether the write happened.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    async def acquire_lock(self, key: str, token: str, ttl_s: float) -> bool | None:
        """Take the lock ``key`` for ``token`` unless someone holds it.

        True: acquired. False: held by another token. None: the backend cannot
        tell (unreachable); callers then proceed without coordination.
        """
        ...

    async def extend_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """Push the lock's expiry to ``ttl_s`` from now if ``token`` still holds it."""
        ...

    async def release_lock(self, key: str, token: str) -> None:
        """Drop the lock if ``token`` still holds it."""
        ...

    async def lock_held(self, key: str) -> bool:
        """Whether anyone holds the lock; False when the backend cannot tell."""
        ...

    async def ping(self) -> bool:
        """Whether the backend answers now (one round trip), for readiness checks."""
        ...

    def health(self) -> StoreHealth:
        """Current health without doing I/O."""
        ...

    @property
    def stats(self) -> StoreStats:
        """The backend's counters."""
        ...
