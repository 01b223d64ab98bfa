"""The reranker: a second opinion on a candidate the cosine and the guard let through.

A small gradient-boosted tree ensemble over ``pair_features`` gives the
probability that two turns ask the same thing; a candidate is served only
when it reaches the model's ``cut``. The trees, the cut and the default
cosine threshold are fitted together on the tune half of the development set
(``python -m bench.semcache_fit``) and ship as ``rerank_wordllama.json``;
``python -m bench.semcache_eval`` reports them on the other half.

Scoring a candidate walks each tree from its root (a few comparisons per
tree) after the features are computed: tens of microseconds in all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from cache.semantic.pair_features import (
    FEATURE_NAMES,
    TurnWords,
    WordVectors,
    pair_features,
    turn_words,
)
from proxy.errors import ConfigError
from routing.embedding import TextEmbedder

MODEL_FILE: Final = "rerank_wordllama.json"


@dataclass(frozen=True, slots=True)
class Tree:
    """One regression tree as parallel arrays; node 0 is the root, ``feature -1`` a leaf.

    At an inner node a pair goes right when its feature is at or above the
    node's threshold, else left.
    """

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def leaf_value(self, x: tuple[float, ...]) -> float:
        """The value of the leaf ``x`` falls into."""
        node = 0
        feature = self.feature
        while (f := feature[node]) >= 0:
            node = self.right[node] if x[f] >= self.threshold[node] else self.left[node]
        return self.value[node]


@dataclass(frozen=True, slots=True)
class RerankModel:
    """A fitted ensemble, its acceptance cut and the cosine threshold chosen with it."""

    features: tuple[str, ...]
    base: float
    trees: tuple[Tree, ...]
    cut: float
    threshold: float

    def probability(self, x: tuple[float, ...]) -> float:
        """The model's probability that the pair with features ``x`` is a true match."""
        margin = self.base + sum(tree.leaf_value(x) for tree in self.trees)
        return 1.0 / (1.0 + math.exp(-margin))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankModel:
        """The model from its JSON form; ``ValueError`` when it does not fit the features."""
        features = tuple(data["features"])
        if features != FEATURE_NAMES:
            raise ValueError(f"model features {features} differ from {FEATURE_NAMES}")
        trees = tuple(
            Tree(
                feature=tuple(int(v) for v in t["feature"]),
                threshold=tuple(float(v) for v in t["threshold"]),
                left=tuple(int(v) for v in t["left"]),
                right=tuple(int(v) for v in t["right"]),
                value=tuple(float(v) for v in t["value"]),
            )
            for t in data["trees"]
        )
        for tree in trees:
            if not len(tree.feature) == len(tree.threshold) == len(tree.value):
                raise ValueError("a tree's arrays differ in length")
            if max(tree.feature) >= len(features):
                raise ValueError("a tree splits on an unknown feature")
        return cls(
            features, float(data["base"]), trees, float(data["cut"]), float(data["threshold"])
        )


def load_model(path: Path | None = None) -> RerankModel:
    """The shipped model (or the one at ``path``); ``ConfigError`` when it is unreadable."""
    try:
        if path is None:
            text = resources.files("cache.semantic").joinpath(MODEL_FILE).read_text("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return RerankModel.from_dict(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError([f"semantic cache reranker model unusable: {exc}"]) from exc


class Reranker:
    """Accepts or rejects a candidate pair of turns; one per process, shared."""

    def __init__(self, vectors: WordVectors, model: RerankModel) -> None:
        self._vectors = vectors
        self.model = model

    @classmethod
    def for_embedder(cls, text_embedder: TextEmbedder) -> Reranker:
        """The shipped model over the word vectors of ``text_embedder``."""
        return cls(WordVectors(text_embedder), load_model())

    @staticmethod
    def prepare(text: str) -> TurnWords:
        """What the reranker needs of one turn (extract the query's once per lookup)."""
        return turn_words(text)

    def score(self, query: TurnWords, stored: TurnWords, *, similarity: float) -> float:
        """Probability that ``query`` and ``stored`` ask the same thing."""
        features = pair_features(query, stored, similarity=similarity, vectors=self._vectors)
        return self.model.probability(features)

    def allows(self, query: TurnWords, stored: TurnWords, *, similarity: float) -> bool:
        """Whether the pair reaches the model's cut."""
        return self.score(query, stored, similarity=similarity) >= self.model.cut
