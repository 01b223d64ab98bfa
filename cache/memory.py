"""In-process backend: an LRU bounded in bytes, with per-entry TTLs.

Size is the UTF-8 length of the key plus the length of the value, so the
bound holds for what the process actually keeps. Expired entries are dropped
when touched or when they reach the LRU end while room is needed. Every method is free of awaits
inside, so each call is atomic on the event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from cache.store import StoreHealth, StoreStats


class MemoryStore:
    """Byte-bounded LRU :class:`~cache.store.CacheStore` for a single worker."""

    def __init__(
        self,
        max_bytes: int,
        *,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._max_bytes = max_bytes
        self._default_ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}
        self._bytes = 0
        self._stats = StoreStats()

    @property
    def size_bytes(self) -> int:
        """Bytes currently held (keys plus values)."""
        return self._bytes

    @property
    def entry_count(self) -> int:
        """Entries currently held, expired ones not yet dropped included."""
        return len(self._entries)

    @property
    def stats(self) -> StoreStats:
        """The backend's counters."""
        return self._stats

    async def ping(self) -> bool:
        """Always answers."""
        return True

    def health(self) -> StoreHealth:
        """Always healthy: memory does not fail independently of the process."""
        return StoreHealth(backend="memory", ok=True, breaker="closed")

    async def get(self, key: str) -> bytes | None:
        """The value under ``key`` (refreshing its recency), or None."""
        self._stats.gets += 1
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and self._clock() >= expires_at:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Store ``value``, evicting least recently used entries to make room.

        A value that alone exceeds the bound is refused.
        """
        size = _size(key, value)
        if size > self._max_bytes:
            return False
        ttl = ttl_s if ttl_s is not None else self._default_ttl_s
        if ttl is not None and ttl <= 0:
            return False
        self._remove(key)
        self._make_room(size)
        expires_at = None if ttl is None else self._clock() + ttl
        self._entries[key] = (value, expires_at)
        self._bytes += size
        self._stats.sets += 1
        return True

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._stats.deletes += 1
        self._remove(key)

    async def acquire_lock(self, key: str, token: str, ttl_s: float) -> bool | None:
        """Take the lock unless another live token holds it."""
        holder = self._live_lock(key)
        if holder is not None:
            return holder == token
        self._locks[key] = (token, self._clock() + ttl_s)
        return True

    async def extend_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """Extend the lock if ``token`` still holds it."""
        if self._live_lock(key) != token:
            return False
        self._locks[key] = (token, self._clock() + ttl_s)
        return True

    async def release_lock(self, key: str, token: str) -> None:
        """Drop the lock if ``token`` still holds it."""
        if self._live_lock(key) == token:
            del self._locks[key]

    async def lock_held(self, key: str) -> bool:
        """Whether a live lock exists."""
        return self._live_lock(key) is not None

    def _live_lock(self, key: str) -> str | None:
        lock = self._locks.get(key)
        if lock is None:
            return None
        token, expires_at = lock
        if self._clock() >= expires_at:
            del self._locks[key]
            return None
        return token

    def _make_room(self, needed: int) -> None:
        # Only the LRU end is examined, keeping a write O(1) amortised; with
        # one TTL for all entries the least recently used also expire first.
        now = self._clock()
        while self._entries and self._bytes + needed > self._max_bytes:
            oldest, (_, expires_at) = next(iter(self._entries.items()))
            self._remove(oldest)
            if expires_at is None or now < expires_at:
                self._stats.evictions += 1

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= _size(key, entry[0])


def _size(key: str, value: bytes) -> int:
    return len(key.encode()) + len(value)
