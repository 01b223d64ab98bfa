"""The semantic index: per-context vectors pointing at exact-cache entries.

An entry is (exact cache key of the stored answer, the last user turn's text,
its unit vector). Entries live in partitions named by a context key, and a
search only ever looks inside one partition, so a question can only match a
question asked after the same system prompt, tools, earlier turns, model and
tenant. The answer itself stays in the exact cache; the index stores the
pointer, and the text, which the guard needs to compare details.
"""

from __future__ import annotations

import heapq
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cache.semantic.simhash import DEFAULT_BITS, SimHasher
from cache.semantic.vectors import Vector, dot

_Id = TypeVar("_Id", str, bytes)

DEFAULT_MAX_CANDIDATES = 64
"""How many pre-filtered entries get an exact cosine; bounds a lookup's work."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the index stores for one answered request."""

    exact_key: str
    text: str
    vector: Vector


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored entry whose similarity to the query reached the threshold."""

    exact_key: str
    text: str
    similarity: float


class SemanticIndex(Protocol):
    """Storage of entries by context; implementations never raise on I/O trouble."""

    async def add(self, context: str, entry: IndexEntry) -> None:
        """Store ``entry`` in partition ``context`` (replacing one with its key)."""
        ...

    async def search(
        self, context: str, vector: Vector, *, threshold: float, limit: int
    ) -> list[Candidate]:
        """Up to ``limit`` entries of ``context`` at cosine >= ``threshold``, best first."""
        ...


class SignatureCache:
    """One :class:`SimHasher` per vector dimension, built on first use."""

    def __init__(self, *, bits: int = DEFAULT_BITS) -> None:
        self._bits = bits
        self._hashers: dict[int, SimHasher] = {}

    def hasher(self, dim: int) -> SimHasher:
        """The hasher for vectors of length ``dim``."""
        hasher = self._hashers.get(dim)
        if hasher is None:
            hasher = self._hashers[dim] = SimHasher.create(dim, bits=self._bits)
        return hasher


def best_candidates(scored: list[tuple[int, _Id]], *, limit: int) -> list[_Id]:
    """Ids of the ``limit`` closest pre-filtered entries, by Hamming distance."""
    return [entry_id for _, entry_id in heapq.nsmallest(limit, scored)]


@dataclass(frozen=True, slots=True)
class _Stored:
    exact_key: str
    text: str
    # float32 array: a list of 256 floats takes 8 KiB, this takes 1 KiB
    vector: array[float]
    signature: int
    created: float


class MemoryIndex:
    """An in-process index of at most ``max_entries`` entries over all contexts.

    The oldest entry goes first when the index is full; with ``ttl_s`` entries
    older than that are neither returned nor kept. ``prefilter=False`` computes
    cosine for every entry of the context (for measurement).
    """

    def __init__(
        self,
        max_entries: int,
        *,
        ttl_s: float | None = None,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        prefilter: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._max_candidates = max_candidates
        self.prefilter = prefilter
        self._clock = clock
        self._signatures = SignatureCache()
        self._contexts: dict[str, dict[str, _Stored]] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._order)

    async def add(self, context: str, entry: IndexEntry) -> None:
        """Store ``entry``; evicts the oldest entries beyond ``max_entries``."""
        signature = self._signatures.hasher(len(entry.vector)).signature(entry.vector)
        self._contexts.setdefault(context, {})[entry.exact_key] = _Stored(
            entry.exact_key, entry.text, array("f", entry.vector), signature, self._clock()
        )
        slot = (context, entry.exact_key)
        self._order[slot] = None
        self._order.move_to_end(slot)
        while len(self._order) > self._max_entries:
            self._remove(*self._order.popitem(last=False)[0])

    async def search(
        self, context: str, vector: Vector, *, threshold: float, limit: int = 5
    ) -> list[Candidate]:
        """Best entries of ``context`` at cosine >= ``threshold``."""
        stored = self._contexts.get(context)
        if not stored:
            return []
        self._expire(context, stored)
        if self.prefilter:
            hasher = self._signatures.hasher(len(vector))
            query = hasher.signature(vector)
            reach = hasher.max_distance(threshold)
            scored = [
                (distance, key)
                for key, item in stored.items()
                if (distance := (item.signature ^ query).bit_count()) <= reach
            ]
            keys = best_candidates(scored, limit=self._max_candidates)
        else:
            keys = list(stored)
        found = [
            Candidate(item.exact_key, item.text, similarity)
            for item in (stored[key] for key in keys)
            if (similarity := dot(vector, item.vector)) >= threshold
        ]
        found.sort(key=lambda c: (-c.similarity, c.exact_key))
        return found[:limit]

    def _expire(self, context: str, stored: dict[str, _Stored]) -> None:
        if self._ttl_s is None:
            return
        oldest_allowed = self._clock() - self._ttl_s
        for key in [k for k, item in stored.items() if item.created < oldest_allowed]:
            self._remove(context, key)
            self._order.pop((context, key), None)

    def _remove(self, context: str, key: str) -> None:
        stored = self._contexts.get(context)
        if stored is None:
            return
        stored.pop(key, None)
        if not stored:
            del self._contexts[context]
