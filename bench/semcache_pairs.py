"""The semantic-cache development pairs, their tune/report split, and embedding them.

Shared by ``bench.semcache_fit`` (fits the reranker on the tune half) and
``bench.semcache_eval`` (reports on the other half). Texts are embedded the
way the cache embeds a turn: ``compared_part`` of the text, through the
embedder built from the same spec the config names.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cache.semantic.embedders import Embedder, build_embedder
from cache.semantic.guard import GuardPolicy, TurnFacts, check_facts, near_duplicate, turn_facts
from cache.semantic.pair_features import TurnWords, WordVectors, pair_features, turn_words
from cache.semantic.turn_window import compared_part
from cache.semantic.wordllama import WordLlamaEmbedder

DEV_SET = Path(__file__).resolve().parent / "data" / "semcache_dev.jsonl.gz"
EMBED_BATCH = 256


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    source: str
    a: str
    b: str
    label: int


def id_rank(pair_id: str) -> int:
    """A stable pseudo-random rank of a pair, from its id alone."""
    return int.from_bytes(hashlib.sha256(pair_id.encode()).digest()[:8], "big")


def load_pairs(path: Path, limit: int | None) -> list[Pair]:
    """The pairs of ``path``; with ``limit``, the ``limit`` lowest-ranked ones."""
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            pairs.append(Pair(r["id"], r["source"], r["text_a"], r["text_b"], int(r["label"])))
    if limit is not None:
        pairs = sorted(pairs, key=lambda p: id_rank(p.id))[:limit]
    return pairs


def is_tune(pair: Pair) -> bool:
    """Whether ``pair`` is in the half used to choose thresholds and fit the reranker."""
    return id_rank("split:" + pair.id) % 2 == 0


@dataclass
class Embedded:
    """Unit vectors of texts (rows of ``matrix``), the embedder, and its speed."""

    embedder: Embedder
    row: dict[str, int]
    matrix: np.ndarray
    seconds_per_text: float

    def cosine(self, a: str, b: str) -> float:
        """Cosine similarity of two embedded texts."""
        return float(self.matrix[self.row[a]] @ self.matrix[self.row[b]])


def embed_texts(spec: str, texts: Iterable[str]) -> Embedded:
    """Every distinct text of ``texts`` embedded by embedder ``spec`` as the cache would."""
    embedder = build_embedder(spec)
    unique = list(dict.fromkeys(texts))
    rows: list[list[float]] = []
    start = time.perf_counter()
    for i in range(0, len(unique), EMBED_BATCH):
        batch = [compared_part(t) for t in unique[i : i + EMBED_BATCH]]
        rows.extend(asyncio.run(embedder.embed(batch)))
    elapsed = time.perf_counter() - start
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(unique), embedder.dim)
    row = {t: i for i, t in enumerate(unique)}
    return Embedded(embedder, row, matrix, elapsed / max(1, len(unique)))


def word_vectors(embedded: Embedded) -> WordVectors:
    """Word vectors of the ``wordllama`` model behind ``embedded``."""
    if not isinstance(embedded.embedder, WordLlamaEmbedder):
        raise ValueError("the reranker needs the wordllama embedder")
    return WordVectors(embedded.embedder.model)


@dataclass
class TextInfo:
    """Per-text facts for the guard and words for the reranker, each extracted once."""

    facts: dict[str, TurnFacts]
    words: dict[str, TurnWords]

    @classmethod
    def of(cls, texts: Iterable[str], *, with_words: bool) -> TextInfo:
        unique = list(dict.fromkeys(texts))
        parts = {t: compared_part(t) for t in unique}
        facts = {t: turn_facts(parts[t]) for t in unique}
        words = {t: turn_words(parts[t]) for t in unique} if with_words else {}
        return cls(facts, words)

    def guard_ok(self, a: str, b: str, policy: GuardPolicy) -> bool:
        """The guard's verdict on a pair of texts."""
        return check_facts(self.facts[a], self.facts[b], policy=policy).allowed

    def near_duplicate(self, a: str, b: str) -> bool:
        """Whether the pair is served without asking the reranker."""
        return near_duplicate(self.facts[a], self.facts[b])


def feature_rows(
    pairs: Sequence[tuple[str, str, float]], info: TextInfo, vectors: WordVectors
) -> np.ndarray:
    """Reranker features of (text, text, cosine) triples, one row each."""
    rows = [
        pair_features(info.words[a], info.words[b], similarity=cos, vectors=vectors)
        for a, b, cos in pairs
    ]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
