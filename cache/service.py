"""The response cache the request pipeline talks to.

One hash per request: compute :meth:`ResponseCache.key` once and pass it to
:meth:`~ResponseCache.lookup`, :meth:`~ResponseCache.store` and
:meth:`~ResponseCache.flight` (each also computes it from the body when not
given). A stored value is ``b"sgc1\\n" + <sha256 hex of the canonical
request> + b"\\n" + <completion JSON>``, sealed by the encryptor when one is
configured; a lookup serves it only when that digest equals the one it
computed, so an entry can never answer a different request.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from cache.coalesce import DEFAULT_COALESCE_POLICY, CoalescePolicy, Coalescer, Flight
from cache.crypto import Encryptor
from cache.keys import exact_key, key_digest
from cache.policy import DEFAULT_MODE, CacheMode, is_cacheable
from cache.store import CacheStore, StoreHealth

ENVELOPE_MAGIC: Final = b"sgc1\n"
_DIGEST_CHARS: Final = 64


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A completion served from the cache instead of the upstream."""

    completion: dict[str, Any]
    kind: Literal["exact", "semantic"] = "exact"
    similarity: float | None = None
    body: bytes | None = None  # the stored JSON of ``completion``, to send as it is


@dataclass(slots=True)
class CacheCounters:
    """Monotonic counters of the exact cache, exported by the metrics layer."""

    lookups: int = 0
    hits_exact: int = 0
    misses: int = 0
    stores: int = 0
    store_skipped: int = 0
    store_failed: int = 0
    unreadable: int = 0


class ResponseCache:
    """Exact response cache over any :class:`~cache.store.CacheStore`."""

    def __init__(
        self,
        store: CacheStore,
        *,
        ttl_s: float,
        cache_length: bool = False,
        encryptor: Encryptor | None = None,
        coalesce_policy: CoalescePolicy = DEFAULT_COALESCE_POLICY,
        exclude_fields: Collection[str] = frozenset(),
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._store = store
        self._ttl_s = ttl_s
        self._cache_length = cache_length
        self._encryptor = encryptor
        self._exclude = frozenset(exclude_fields)
        self._counters = CacheCounters()
        self._coalescer = Coalescer(store, fetch=self._fetch, policy=coalesce_policy)

    @property
    def counters(self) -> CacheCounters:
        """Lookup and store counters."""
        return self._counters

    @property
    def backend(self) -> CacheStore:
        """The storage backend."""
        return self._store

    def metrics(self) -> dict[str, int]:
        """Every counter of the cache, its coalescer and its backend, flat."""
        flat = {f"cache_{k}": v for k, v in asdict(self._counters).items()}
        flat |= {f"coalesce_{k}": v for k, v in asdict(self._coalescer.stats).items()}
        flat |= {f"store_{k}": v for k, v in asdict(self._store.stats).items()}
        return flat

    def health(self) -> StoreHealth:
        """Backend health for readiness reporting."""
        return self._store.health()

    def key(self, body: Mapping[str, Any], *, namespace: str, model: str) -> str:
        """The exact key of ``body`` in ``namespace`` for ``model``."""
        return exact_key(body, namespace=namespace, model=model, exclude=self._exclude)

    async def lookup(
        self,
        body: Mapping[str, Any],
        *,
        namespace: str,
        model: str,
        key: str | None = None,
    ) -> CachedAnswer | None:
        """The stored answer to exactly this request, or None."""
        self._counters.lookups += 1
        found = await self._fetch_stored(key or self.key(body, namespace=namespace, model=model))
        if found is None:
            self._counters.misses += 1
            return None
        self._counters.hits_exact += 1
        return CachedAnswer(completion=found[0], body=found[1])

    async def store(
        self,
        body: Mapping[str, Any],
        completion: Mapping[str, Any],
        *,
        namespace: str,
        model: str,
        key: str | None = None,
    ) -> bool:
        """Store ``completion`` as the answer to ``body`` if policy allows; whether it was."""
        if not self.accepts(body, completion):
            self._counters.store_skipped += 1
            return False
        return await self._save(key or self.key(body, namespace=namespace, model=model), completion)

    def accepts(self, body: Mapping[str, Any], completion: Mapping[str, Any]) -> bool:
        """Whether policy lets ``completion`` be stored as the answer to ``body``."""
        n = body.get("n")
        expected = n if isinstance(n, int) and not isinstance(n, bool) else 1
        return is_cacheable(completion, cache_length=self._cache_length, expected_choices=expected)

    @contextlib.asynccontextmanager
    async def flight(
        self,
        body: Mapping[str, Any],
        *,
        namespace: str,
        model: str,
        mode: CacheMode = DEFAULT_MODE,
        key: str | None = None,
    ) -> AsyncIterator[Flight]:
        """Coalesce identical in-flight requests around the upstream call.

        A follower gets ``flight.answer``; the leader (or a solo request) calls
        the upstream and then ``await flight.publish(completion)``. Requests
        that may not read the cache, or may not write it, never join a group.
        """
        cache_key = key or self.key(body, namespace=namespace, model=model)

        def accept(completion: Mapping[str, Any]) -> bool:
            return self.accepts(body, completion)

        async def save(completion: Mapping[str, Any]) -> bool:
            return await self._save(cache_key, completion)

        async with self._coalescer.flight(
            cache_key,
            accept=accept,
            save=save if mode.store else None,
            coalesce=mode.lookup and mode.store,
        ) as flight:
            yield flight

    async def _save(self, key: str, completion: Mapping[str, Any]) -> bool:
        value = self._seal(key, completion)
        if await self._store.set(key, value, self._ttl_s):
            self._counters.stores += 1
            return True
        self._counters.store_failed += 1
        return False

    async def _fetch(self, key: str) -> dict[str, Any] | None:
        found = await self._fetch_stored(key)
        return None if found is None else found[0]

    async def _fetch_stored(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        raw = await self._store.get(key)
        if raw is None:
            return None
        found = self._open(key, raw)
        if found is None:
            self._counters.unreadable += 1
        return found

    def _seal(self, key: str, completion: Mapping[str, Any]) -> bytes:
        payload = json.dumps(completion, separators=(",", ":"), ensure_ascii=False).encode()
        plain = ENVELOPE_MAGIC + key_digest(key).encode() + b"\n" + payload
        if self._encryptor is None:
            return plain
        return self._encryptor.encrypt(plain, associated=key.encode())

    def _open(self, key: str, raw: bytes) -> tuple[dict[str, Any], bytes] | None:
        """The stored completion and its JSON text, or None when unreadable or not ours."""
        plain: bytes | None = raw
        if self._encryptor is not None:
            plain = self._encryptor.decrypt(raw, associated=key.encode())
        if plain is None or not plain.startswith(ENVELOPE_MAGIC):
            return None
        start = len(ENVELOPE_MAGIC)
        digest = plain[start : start + _DIGEST_CHARS]
        if plain[start + _DIGEST_CHARS : start + _DIGEST_CHARS + 1] != b"\n":
            return None
        if not hmac.compare_digest(digest, key_digest(key).encode()):
            return None
        payload = plain[start + _DIGEST_CHARS + 1 :]
        try:
            completion = json.loads(payload)
        except ValueError:
            return None
        return (completion, payload) if isinstance(completion, dict) else None
