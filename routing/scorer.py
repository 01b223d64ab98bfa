"""The complexity score of a chat request, and what drove it.

The score estimates how much worse a cheaper tier's answer would be than the
strong tier's (0 = no worse, 1 = much worse). It comes from the text
embedding of the request (the outcomes of the most similar training prompts,
or a linear model over the embedding, whichever validation chose; see
``routing.fit``) plus the counted features of ``routing.features``: length,
conversation, tools, code blocks.

    scorer = Scorer.load()
    score = scorer.score({"messages": [{"role": "user", "content": "Hi!"}]})
    score.value, score.reasons  # 0.03, ('short prompt', 'like "Hello there" (...)')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.embedding import TextEmbedder
from routing.features import FEATURE_NAMES, embedding_text, features, parts_of
from routing.learn import EPSILON, NeighbourIndex
from routing.model import DEFAULT_QUALITY_TARGET, Exemplar, RouterModel, load_model
from routing.tiers import Score, Thresholds

MAX_REASONS = 3
EXPLAINED_NEIGHBOURS = 3
# Pushes smaller than this (in log-odds) are not worth naming.
_MIN_PUSH = 0.1
# (feature above its usual value, below it); None: not worth saying.
PHRASES: Mapping[str, tuple[str | None, str | None]] = {
    "last_len": ("long prompt", "short prompt"),
    "context_len": ("long conversation", None),
    "depth": ("many turns", None),
    "tools_offered": ("tools offered", None),
    "tool_results": ("tool results", None),
    "code_fence": ("code block", None),
}


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A training prompt similar to the request, and how similar (cosine)."""

    exemplar: Exemplar
    similarity: float


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The parts of one score, for explanations."""

    content_logit: float
    pushes: tuple[tuple[str, float, float], ...]
    """(feature, value, push on the log-odds) for every counted feature."""
    neighbours: tuple[Neighbour, ...]
    logit: float


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _logit(p: float) -> float:
    q = min(max(p, EPSILON), 1.0 - EPSILON)
    return math.log(q / (1.0 - q))


def describe_neighbour(neighbour: Neighbour) -> str:
    """``like "opening words" (outcome)``: a training prompt as a reason."""
    return f'like "{neighbour.exemplar.text}" ({neighbour.exemplar.label})'


class Scorer:
    """Scores requests with one loaded model and one shared embedder."""

    def __init__(self, model: RouterModel, embedder: TextEmbedder) -> None:
        self.model = model
        self._embedder = embedder
        self._index = NeighbourIndex(model.vectors, model.targets)

    @classmethod
    def load(cls, embedder: TextEmbedder | None = None) -> Scorer:
        """The shipped model with ``embedder`` (loaded here when not given)."""
        return cls(load_model(), embedder or TextEmbedder.load())

    def breakdown(self, body: Mapping[str, Any], *, neighbours: int = 1) -> Breakdown:
        """Every part of the score of ``body``."""
        parts = parts_of(body)
        vector = self._embedder.embed(embedding_text(parts))
        model = self.model
        k = max(neighbours, model.neighbours_k if model.kind == "neighbours" else 0)
        found = self._index.nearest(vector, k)
        if model.kind == "neighbours":
            estimate = self._index.estimate(found, temperature=model.temperature)
            content = _logit(estimate)
        else:
            assert model.embedding_weights is not None
            content = float(vector @ model.embedding_weights)
        pushes = tuple(
            (name, x, model.feature_weights[name] * (x - model.feature_centres[name]))
            for name, x in zip(FEATURE_NAMES, features(parts), strict=True)
        )
        logit = model.intercept + content + sum(p for _, _, p in pushes)
        shown = tuple(
            Neighbour(model.exemplars[int(i)], float(s))
            for i, s in zip(found.index[:neighbours], found.similarity[:neighbours], strict=True)
        )
        return Breakdown(content, pushes, shown, logit)

    def score(self, body: Mapping[str, Any], *, thresholds: Thresholds | None = None) -> Score:
        """The score of ``body`` and up to ``MAX_REASONS`` reasons.

        Reasons name the counted features that pushed the score towards the
        tier it falls in (given ``thresholds``; the model's default otherwise)
        and the most similar training prompt with its outcome.
        """
        parts = self.breakdown(body)
        value = _sigmoid(parts.logit)
        th = thresholds or self.model.operating(DEFAULT_QUALITY_TARGET).thresholds
        tier = th.tier(value)
        reasons: list[str] = []
        for name, _, push in sorted(parts.pushes, key=lambda p: -abs(p[2])):
            above, below = PHRASES[name]
            phrase = above if push > 0 else below
            toward = (push > 0) if tier == "large" else (push < 0) if tier == "small" else True
            if phrase and abs(push) >= _MIN_PUSH and toward:
                reasons.append(phrase)
        reasons = reasons[: MAX_REASONS - 1]
        if parts.neighbours:
            reasons.append(describe_neighbour(parts.neighbours[0]))
        return Score(value=value, reasons=tuple(reasons))
