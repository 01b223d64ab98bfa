"""The semantic index on plain Redis (no modules), shared by every replica.

Per context partition ``P`` (a hash of the context key, inside a hash tag so
a cluster keeps a partition on one slot) two keys:

* ``<prefix>:{P}:e`` hash: entry id -> packed entry (vector as float32, exact
  cache key, turn text);
* ``<prefix>:{P}:s`` string: fixed-size records (entry id, 256-bit signature,
  creation time), oldest first. A lookup reads it with one GET: one bulk
  reply parses far faster than a hash of thousands of fields.

A write is one Lua script (atomic): store the entry, append its record and,
when the partition holds more than ``max_per_context`` entries, drop the
oldest (a sixteenth of the cap at once, so the string is not rewritten on
every write) and refresh both TTLs. Every write gets a fresh entry id; a
lookup that meets one exact key twice keeps the best.

A lookup keeps the records within Hamming reach of the query's signature,
fetches only the closest of those entries with HMGET and computes cosine in
Python. Vectors never leave Redis for entries the signatures rule out.

Redis trouble (errors, a slow server, a tripped breaker) is a miss or a
skipped write, never an exception: the semantic cache only ever saves money.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from cache.semantic.index import (
    DEFAULT_MAX_CANDIDATES,
    Candidate,
    IndexEntry,
    SignatureCache,
    best_candidates,
)
from cache.semantic.simhash import DEFAULT_BITS
from cache.semantic.vectors import Vector, dot, pack, unpack
from routing.breaker import CircuitBreaker

log = logging.getLogger(__name__)

_SIGNATURE_BYTES = DEFAULT_BITS // 8
_ID_BYTES = 12
_RECORD = struct.Struct(f"<{_ID_BYTES}s{_SIGNATURE_BYTES}sd")  # id, signature, created
_ENTRY_HEADER = struct.Struct("<II")  # packed vector length, exact key length (bytes)

# KEYS: entries hash, records string. ARGV: id, entry, record, cap, drop, ttl ms.
_ADD_SCRIPT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local size = string.len(ARGV[3])
local n = redis.call('APPEND', KEYS[2], ARGV[3]) / size
if n > tonumber(ARGV[4]) then
  local drop = math.min(n, n - tonumber(ARGV[4]) + tonumber(ARGV[5]))
  local head = redis.call('GETRANGE', KEYS[2], 0, drop * size - 1)
  for i = 0, drop - 1 do
    redis.call('HDEL', KEYS[1], string.sub(head, i * size + 1, i * size + 12))
  end
  redis.call('SET', KEYS[2], redis.call('GETRANGE', KEYS[2], drop * size, -1))
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return n
"""


@dataclass(frozen=True, slots=True)
class VectorSearchSupport:
    """What the connected server offers for server-side vector search."""

    redis_version: str
    modules: tuple[str, ...]
    has_search_module: bool  # RediSearch: FT.CREATE ... VECTOR, FT.SEARCH KNN
    has_vector_sets: bool  # Redis 8: VADD / VSIM


async def vector_search_support(client: Redis) -> VectorSearchSupport:
    """Inspect the server: ``MODULE LIST`` and whether ``VSIM`` exists.

    A diagnostic for start-up logs and benchmarks; unlike the index it lets
    ``RedisError`` through.
    """
    info = await client.info("server")
    modules_raw: Any = await client.execute_command("MODULE", "LIST")  # type: ignore[no-untyped-call]
    names = tuple(sorted(_module_name(m) for m in modules_raw or []))
    return VectorSearchSupport(
        redis_version=str(info.get("redis_version", "?")),
        modules=names,
        has_search_module=any(n.lower() in {"search", "ft", "searchlight"} for n in names),
        has_vector_sets=await _has_command(client, "VSIM"),
    )


async def _has_command(client: Redis, name: str) -> bool:
    """Whether the server knows ``name``: ``COMMAND INFO`` via the raw reply.

    redis-py's parser for ``COMMAND INFO`` fails on the nil reply for an
    unknown command, so the command is called without arguments instead: an
    unknown command and a known one answer with different errors.
    """
    try:
        await client.execute_command(name)  # type: ignore[no-untyped-call]
    except ResponseError as exc:
        return "unknown command" not in str(exc).lower()
    return True


def _module_name(module: Any) -> str:
    if isinstance(module, dict):
        raw = module.get(b"name", module.get("name", b"?"))
    else:  # flat [b"name", b"search", b"ver", ...]
        pairs = dict(zip(module[::2], module[1::2], strict=False))
        raw = pairs.get(b"name", pairs.get("name", b"?"))
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisIndex:
    """Semantic index in Redis; see the module docstring for the layout."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        ttl_s: float,
        max_per_context: int,
        op_timeout_s: float = 0.05,
        breaker: CircuitBreaker | None = None,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_per_context < 1 or ttl_s <= 0:
            raise ValueError("max_per_context and ttl_s must be positive")
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisIndex needs a client with decode_responses=False")
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._ttl_s = ttl_s
        self._cap = max_per_context
        self._timeout_s = op_timeout_s
        self._breaker = breaker if breaker is not None else CircuitBreaker()
        self._max_candidates = max_candidates
        self._clock = clock  # wall clock: creation times are compared across replicas
        self._signatures = SignatureCache()
        self._add_script = client.register_script(_ADD_SCRIPT)

    def keys(self, context: str) -> tuple[str, str]:
        """The entry hash and the record string of ``context``."""
        partition = hashlib.sha256(context.encode()).hexdigest()[:32]
        base = f"{self._prefix}:{{{partition}}}"
        return f"{base}:e", f"{base}:s"

    async def add(self, context: str, entry: IndexEntry) -> None:
        """Store ``entry``; on Redis trouble the entry is dropped and logged."""
        if not self._breaker.allow():
            return
        hasher = self._signatures.hasher(len(entry.vector))
        signature = hasher.signature(entry.vector).to_bytes(_SIGNATURE_BYTES, "little")
        entry_id = secrets.token_bytes(_ID_BYTES)
        args: list[str | bytes | int] = [
            entry_id,
            _pack_entry(entry),
            _RECORD.pack(entry_id, signature, self._clock()),
            self._cap,
            self._cap // 16,
            self._ttl_ms,
        ]
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._add_script(keys=list(self.keys(context)), args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("add", exc)
            return
        self._breaker.record_success()

    async def search(
        self, context: str, vector: Vector, *, threshold: float, limit: int = 5
    ) -> list[Candidate]:
        """Best entries of ``context`` at cosine >= ``threshold``; [] on Redis trouble."""
        if not self._breaker.allow():
            return []
        entries_key, records_key = self.keys(context)
        hasher = self._signatures.hasher(len(vector))
        query = hasher.signature(vector)
        reach = hasher.max_distance(threshold)
        try:
            async with asyncio.timeout(self._timeout_s):
                records: Any = await self._client.get(records_key)
                ids = self._reachable(records or b"", query, reach)
                blobs: list[Any] = await self._client.hmget(entries_key, ids) if ids else []
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("search", exc)
            return []
        self._breaker.record_success()
        best: dict[str, Candidate] = {}
        for blob in blobs:
            entry = _unpack_entry(blob) if blob is not None else None
            if entry is None or len(entry.vector) != len(vector):
                continue
            similarity = dot(vector, entry.vector)
            seen = best.get(entry.exact_key)
            if similarity >= threshold and (seen is None or seen.similarity < similarity):
                best[entry.exact_key] = Candidate(entry.exact_key, entry.text, similarity)
        return sorted(best.values(), key=lambda c: (-c.similarity, c.exact_key))[:limit]

    def _reachable(self, records: bytes, query: int, reach: int) -> list[bytes]:
        oldest_allowed = self._clock() - self._ttl_s
        usable = len(records) - len(records) % _RECORD.size
        from_bytes = int.from_bytes
        scored = [
            (distance, entry_id)
            for entry_id, signature, created in _RECORD.iter_unpack(records[:usable])
            if created >= oldest_allowed
            and (distance := (from_bytes(signature, "little") ^ query).bit_count()) <= reach
        ]
        return best_candidates(scored, limit=self._max_candidates)

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._breaker.record_failure()
        log.warning("semantic cache %s skipped: redis %s (%s)", operation, type(exc).__name__, exc)


def _pack_entry(entry: IndexEntry) -> bytes:
    key = entry.exact_key.encode()
    vector = pack(entry.vector)
    return _ENTRY_HEADER.pack(len(vector), len(key)) + vector + key + entry.text.encode()


def _unpack_entry(blob: bytes) -> IndexEntry | None:
    """The entry in ``blob``, or None for a blob this version cannot read."""
    try:
        vector_len, key_len = _ENTRY_HEADER.unpack_from(blob)
        end = _ENTRY_HEADER.size + vector_len
        vector = unpack(blob[_ENTRY_HEADER.size : end])
        key = blob[end : end + key_len].decode()
        text = blob[end + key_len :].decode()
    except (struct.error, UnicodeDecodeError, ValueError, IndexError):
        return None
    return IndexEntry(key, text, vector)
