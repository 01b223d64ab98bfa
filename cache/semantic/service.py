"""The semantic cache facade: embed the last user turn, search its context, check.

``lookup`` answers "has a question like this one, asked in exactly the same
context, been answered before?" with the exact-cache key of that answer.
``add`` records an answered request. The completion itself is read from and
written to the exact cache by the caller; this layer only finds the key.

A candidate above the threshold is served only if the two turns differ only
inside their compared windows (``turn_window``), the guard allows them, and
(for an embedder with a reranker: ``wordllama``) they differ only in case,
whitespace and punctuation or the reranker accepts them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from cache.keys import last_user_text, semantic_context_key
from cache.semantic.embedders import Embedder
from cache.semantic.guard import GuardPolicy, check_facts, near_duplicate, turn_facts
from cache.semantic.index import Candidate, IndexEntry, SemanticIndex
from cache.semantic.turn_window import compared_part, differ_only_in_windows
from cache.semantic.vectors import Vector
from cache.semantic.wordllama import WORDLLAMA, WordLlamaEmbedder
from proxy.errors import SpendgateError

if TYPE_CHECKING:  # the reranker needs numpy and the model: imported when one is built
    from cache.semantic.rerank import Reranker

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS: Final = MappingProxyType({"hash": 0.91, WORDLLAMA: 0.8})
"""Per-embedder default similarity threshold: ``hash`` chosen by bench.semcache_eval,
``wordllama`` together with its reranker by bench.semcache_fit (the model file's
``threshold``), both on the tune half of the development set."""

MODEL_EMBEDDER_THRESHOLD: Final = 0.95
"""Default for model embedders (provider, sentence-transformers) until measured."""

DEFAULT_MAX_TEXT_CHARS: Final = 8000
CANDIDATES_PER_LOOKUP: Final = 5


def default_threshold(embedder_name: str) -> float:
    """The conservative default similarity threshold for an embedder."""
    return DEFAULT_THRESHOLDS.get(embedder_name, MODEL_EMBEDDER_THRESHOLD)


def default_guard_policy(embedder_name: str) -> GuardPolicy:
    """Guard policy for an embedder: a lexical embedding also needs equal content words."""
    return GuardPolicy(content_words=embedder_name == "hash")


def default_reranker(embedder: Embedder) -> Reranker | None:
    """The reranker fitted for ``embedder``: ``wordllama`` has one, sharing its model."""
    if not isinstance(embedder, WordLlamaEmbedder):
        return None
    from cache.semantic.rerank import Reranker

    return Reranker.for_embedder(embedder.model)


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A semantic hit: where the answer is, how close, and what finding it cost."""

    exact_key: str
    similarity: float
    overhead_micro: int


@dataclass(frozen=True, slots=True)
class EmbeddedTurn:
    """The last user turn of one request, where it belongs and its vector."""

    partition: str
    text: str
    vector: Vector


@dataclass(frozen=True, slots=True)
class SemanticProbe:
    """Everything a lookup learned; pass it to ``add`` to avoid embedding twice."""

    match: SemanticMatch | None
    overhead_micro: int  # spent on embedding, hit or miss
    turn: EmbeddedTurn | None = None  # None when the request has no usable turn


_SKIPPED: Final = SemanticProbe(None, 0)


class SemanticCache:
    """Finds earlier answers to near-identical last user turns in the same context."""

    def __init__(
        self,
        embedder: Embedder,
        index: SemanticIndex,
        *,
        threshold: float | None = None,
        guard: bool | GuardPolicy = True,
        rerank: bool | Reranker = True,
        exclude: Collection[str] = (),
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ) -> None:
        self._embedder = embedder
        self._index = index
        self.threshold = threshold if threshold is not None else default_threshold(embedder.name)
        if guard is True:
            guard = default_guard_policy(embedder.name)
        self._guard: GuardPolicy | None = guard if isinstance(guard, GuardPolicy) else None
        if rerank is True:
            rerank = default_reranker(embedder) or False
        self._reranker: Reranker | None = None if isinstance(rerank, bool) else rerank
        self._exclude = exclude
        self._max_text_chars = max_text_chars

    async def lookup(
        self,
        body: Mapping[str, Any],
        *,
        namespace: str,
        model: str,
        threshold: float | None = None,
    ) -> SemanticMatch | None:
        """The best guarded match for ``body`` at ``threshold`` (a tenant's override)."""
        probe = await self.probe(body, namespace=namespace, model=model, threshold=threshold)
        return probe.match

    async def probe(
        self,
        body: Mapping[str, Any],
        *,
        namespace: str,
        model: str,
        threshold: float | None = None,
    ) -> SemanticProbe:
        """Like :meth:`lookup`, also reporting the embedding cost of a miss."""
        target = self._target(body, namespace=namespace, model=model)
        if target is None:
            return _SKIPPED
        partition, text = target
        embedded = await self._embed(text)
        if embedded is None:
            return _SKIPPED
        vector, overhead = embedded
        limit = threshold if threshold is not None else self.threshold
        candidates = await self._index.search(
            partition, vector, threshold=limit, limit=CANDIDATES_PER_LOOKUP
        )
        turn = EmbeddedTurn(partition, text, vector)
        chosen = self._first_allowed(text, candidates)
        if chosen is None:
            return SemanticProbe(None, overhead, turn)
        # float32 storage can put an identical text a hair above 1.0
        match = SemanticMatch(chosen.exact_key, min(1.0, chosen.similarity), overhead)
        return SemanticProbe(match, overhead, turn)

    def _first_allowed(self, text: str, candidates: list[Candidate]) -> Candidate | None:
        """The best candidate that passes the window check, the guard and the reranker."""
        if not candidates:
            return None
        query = compared_part(text)
        query_facts = turn_facts(query)
        query_words = self._reranker.prepare(query) if self._reranker is not None else None
        for candidate in candidates:
            if not differ_only_in_windows(text, candidate.text):
                log.debug("semantic candidate rejected: long turns differ outside the window")
                continue
            stored = compared_part(candidate.text)
            stored_facts = turn_facts(stored)
            if self._guard is not None:
                verdict = check_facts(query_facts, stored_facts, policy=self._guard)
                if not verdict.allowed:
                    log.debug("semantic candidate rejected by guard: %s", verdict.reason)
                    continue
            if (
                query_words is not None
                and self._reranker is not None
                and not near_duplicate(query_facts, stored_facts)
                and not self._reranker.allows(
                    query_words, self._reranker.prepare(stored), similarity=candidate.similarity
                )
            ):
                log.debug("semantic candidate rejected by reranker")
                continue
            return candidate
        return None

    async def add(
        self,
        body: Mapping[str, Any],
        *,
        namespace: str,
        model: str,
        exact_key: str,
        probe: SemanticProbe | None = None,
    ) -> int:
        """Record that the answer to ``body`` is stored under ``exact_key``.

        ``probe`` must come from :meth:`probe` on this same request: its
        embedded turn is stored as is and ``body`` is not read again. Returns
        the micro-dollars spent embedding here (0 when the probe's vector is reused).
        """
        if probe is not None and probe.turn is not None:
            turn = probe.turn
            await self._index.add(turn.partition, IndexEntry(exact_key, turn.text, turn.vector))
            return 0
        target = self._target(body, namespace=namespace, model=model)
        if target is None:
            return 0
        partition, text = target
        embedded = await self._embed(text)
        if embedded is None:
            return 0
        vector, overhead = embedded
        await self._index.add(partition, IndexEntry(exact_key, text, vector))
        return overhead

    def _target(
        self, body: Mapping[str, Any], *, namespace: str, model: str
    ) -> tuple[str, str] | None:
        context = semantic_context_key(
            body, namespace=namespace, model=model, exclude=self._exclude
        )
        text = last_user_text(body)
        if context is None or text is None or not text.strip():
            return None
        if len(text) > self._max_text_chars:
            return None
        # Vectors of different embedders are not comparable: separate partitions.
        return f"{self._embedder.name}\x00{context}", text

    async def _embed(self, text: str) -> tuple[Vector, int] | None:
        try:
            vectors = await self._embedder.embed([compared_part(text)])
        except (SpendgateError, ValueError) as exc:
            log.warning("semantic cache skipped: embedding failed: %s", exc)
            return None
        # Read right after the await: this call's own cost (see embedders module).
        return vectors[0], self._embedder.overhead_micro
