"""Complexity score of a chat request: a logistic model over ``routing.features``.

The features include a fixed math / code / chat gate with per-domain copies,
so the one linear model acts as a mixture: shared weights plus, inside a
domain, that domain's offsets (see ``routing.fit`` for how they are learned).

The score is the model's probability that a cheap model is *not* enough for
the request (0 = trivial, 1 = needs the strongest tier). It is a float because
it is a probability, not money. Weights, feature means and tier thresholds
come from ``routing/weights.json``, written by ``python -m routing.fit``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from routing.features import (
    BASE_FEATURE_NAMES,
    DOMAINS,
    FEATURE_NAMES,
    FEATURE_PHRASES,
    PER_DOMAIN_BASE_INDEX,
    extract,
)

Tier = Literal["small", "medium", "large"]

MAX_REASONS = 3
# Contributions smaller than this (in log-odds) are not worth naming as a reason.
_MIN_REASON_LOGIT = 0.05


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score bounds of the tiers: below ``small_max`` -> small, below ``medium_max`` -> medium."""

    small_max: float
    medium_max: float

    def tier(self, score: float) -> Tier:
        """The least tier a request of this score needs."""
        if score < self.small_max:
            return "small"
        if score < self.medium_max:
            return "medium"
        return "large"


@dataclass(frozen=True, slots=True)
class Weights:
    """A fitted scoring model: one coefficient and one reference value per feature.

    The reference (``means``) is what reasons compare a request with: the
    training mean for base features, 0 for domain indicators and copies.
    """

    bias: float
    coefficients: tuple[float, ...]
    means: tuple[float, ...]
    thresholds: Thresholds
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(FEATURE_NAMES) or len(self.means) != len(FEATURE_NAMES):
            raise ValueError(f"weights must have {len(FEATURE_NAMES)} coefficients and means")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Weights:
        """Build from the JSON shape of ``weights.json`` (features keyed by name)."""
        features = data["features"]
        missing = [name for name in FEATURE_NAMES if name not in features]
        if missing:
            raise ValueError(f"weights lack features: {', '.join(missing)}")
        th = data["thresholds"]
        return cls(
            bias=float(data["bias"]),
            coefficients=tuple(float(features[n]["weight"]) for n in FEATURE_NAMES),
            means=tuple(float(features[n]["mean"]) for n in FEATURE_NAMES),
            thresholds=Thresholds(float(th["small_max"]), float(th["medium_max"])),
            metadata=data.get("metadata", {}),
        )


@dataclass(frozen=True, slots=True)
class Score:
    """A complexity score in [0, 1] and the main features behind it."""

    value: float
    reasons: tuple[str, ...]


def load_weights(path: Path | None = None) -> Weights:
    """Read a weights file; by default the one shipped in the ``routing`` package."""
    if path is None:
        text = resources.files("routing").joinpath("weights.json").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return Weights.from_dict(json.loads(text))


def logit_of(features: tuple[float, ...], weights: Weights) -> float:
    """The linear part of the model (log-odds that a cheap model is not enough)."""
    total = weights.bias
    for x, w in zip(features, weights.coefficients, strict=True):
        total += w * x
    return total


def sigmoid(z: float) -> float:
    """The logistic function, safe for large ``|z|``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def contributions(features: tuple[float, ...], weights: Weights) -> list[tuple[float, str]]:
    """Each feature's push on the log-odds relative to a typical request, largest first.

    A domain's indicator and copies count only when the request is in that
    domain (elsewhere they are zero by construction, not because of the
    request); a copy's push is added to its base feature's, so each base
    feature is named at most once.
    """
    w, means = weights.coefficients, weights.means
    n_base, n_copies = len(BASE_FEATURE_NAMES), len(PER_DOMAIN_BASE_INDEX)
    deltas = [w[i] * (features[i] - means[i]) for i in range(n_base)]
    pushes: list[tuple[float, str]] = []
    for k, domain in enumerate(DOMAINS):
        flag = n_base + k
        if not features[flag]:
            continue
        pushes.append((w[flag] * (1.0 - means[flag]), FEATURE_PHRASES[f"is_{domain}"][0]))
        start = n_base + len(DOMAINS) + k * n_copies
        for p, i in enumerate(PER_DOMAIN_BASE_INDEX):
            j = start + p
            deltas[i] += w[j] * (features[j] - means[j])
    for i, name in enumerate(BASE_FEATURE_NAMES):
        above, below = FEATURE_PHRASES[name]
        pushes.append((deltas[i], above if features[i] > means[i] else below))
    pushes = [p for p in pushes if abs(p[0]) >= _MIN_REASON_LOGIT]
    pushes.sort(key=lambda item: -abs(item[0]))
    return pushes


def score_features(features: tuple[float, ...], *, weights: Weights) -> Score:
    """Score an already extracted feature vector.

    Reasons explain the tier the score falls in: for the small tier the
    largest pushes down, for the large tier the largest pushes up, for the
    medium tier the largest either way (and the largest either way when
    nothing pushes in the tier's direction).
    """
    logit = logit_of(features, weights)
    value = sigmoid(logit)
    pushes = contributions(features, weights)
    tier = weights.thresholds.tier(value)
    if tier != "medium":
        up = tier == "large"
        pushes = [p for p in pushes if (p[0] > 0) == up] or pushes[:1]
    return Score(value=value, reasons=tuple(phrase for _, phrase in pushes[:MAX_REASONS]))


def score_request(body: Mapping[str, Any], *, weights: Weights) -> Score:
    """Complexity of a chat-completions body: 0 = a cheap model suffices, 1 = it does not."""
    return score_features(extract(body), weights=weights)
