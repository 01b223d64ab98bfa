"""From a quality target to tier thresholds, on held-out validation scores.

``routing.quality_target`` is the share of the strong tier's measured quality
that routed traffic must keep. For each target, the fit finds the two score
thresholds (small below the first, large from the second, medium between)
that keep at least that share at the least relative cost, on validation
prompts whose answers were measured for a model of every tier, each scored by
a model that did not train on it.

Relative cost of a call per tier is ``TIER_COSTS``: the list prices of
typical small, medium and large models (gpt-4o-mini, gpt-4.1-mini, gpt-4o:
about 1 : 2.7 : 17) rounded to 1 : 4 : 16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from routing.tiers import Thresholds

TIER_COSTS = (1.0, 4.0, 16.0)
# Quality targets the weights file carries thresholds for; others round up to these.
TARGETS = tuple(round(0.80 + 0.01 * i, 2) for i in range(21))
# Candidate cut points: every half percent of the validation prompts.
_CUTS = 200


@dataclass(frozen=True, slots=True)
class Operating:
    """One quality target's thresholds and what they do on the validation prompts."""

    quality_target: float
    thresholds: Thresholds
    shares: tuple[float, float, float]
    quality_kept: float
    relative_cost: float
    """Cost per call against sending every call to the large tier."""


def outcome(
    thresholds: Thresholds, scores: npt.NDArray[np.float64], qualities: npt.NDArray[np.float64]
) -> tuple[tuple[float, float, float], float, float]:
    """Tier shares, quality kept (vs all large) and relative cost of ``thresholds``."""
    tier = np.where(
        scores < thresholds.small_max, 0, np.where(scores < thresholds.medium_max, 1, 2)
    )
    shares = tuple(float((tier == t).mean()) for t in range(3))
    kept = float(qualities[np.arange(len(tier)), tier].sum() / qualities[:, 2].sum())
    cost = float(sum(s * c for s, c in zip(shares, TIER_COSTS, strict=True)) / TIER_COSTS[2])
    return (shares[0], shares[1], shares[2]), kept, cost


def operating_points(
    scores: Sequence[float], qualities: Sequence[tuple[float, float, float]]
) -> list[Operating]:
    """The cheapest thresholds meeting each of ``TARGETS`` on these validation prompts."""
    s = np.asarray(scores, dtype=np.float64)
    q = np.asarray(qualities, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    s_sorted, q_sorted = s[order], q[order]
    n = len(s)
    prefix = np.vstack([np.zeros(3), np.cumsum(q_sorted, axis=0)])
    cuts = np.unique(np.round(np.linspace(0, n, _CUTS + 1)).astype(int))
    i, j = np.meshgrid(cuts, cuts, indexing="ij")
    valid = i <= j
    quality = (prefix[i, 0] + prefix[j, 1] - prefix[i, 1] + prefix[n, 2] - prefix[j, 2]) / n
    cost = (i * TIER_COSTS[0] + (j - i) * TIER_COSTS[1] + (n - j) * TIER_COSTS[2]) / n
    strong = prefix[n, 2] / n
    points: list[Operating] = []
    for target in TARGETS:
        ok = valid & (quality >= target * strong - 1e-12)
        # Least cost; among equals, the most traffic kept off the large tier.
        masked = np.where(ok, cost, np.inf)
        best = np.flatnonzero(masked == masked.min())
        k = best[np.argmax(j.ravel()[best])]
        th = Thresholds(
            _cut_value(s_sorted, int(i.ravel()[k])), _cut_value(s_sorted, int(j.ravel()[k]))
        )
        if points:
            # A stricter target never lowers a tier's bar (noise in the search could).
            prev = points[-1].thresholds
            th = Thresholds(min(th.small_max, prev.small_max), min(th.medium_max, prev.medium_max))
        shares, kept, rel = outcome(th, s, q)
        points.append(Operating(target, th, shares, kept, rel))
    return points


def _cut_value(sorted_scores: npt.NDArray[np.float64], index: int) -> float:
    """The largest threshold putting exactly the first ``index`` sorted scores below it.

    The largest, because a request scoring below every validation prompt that
    needed a stronger tier is easier than anything validation saw: with
    ``index`` 0 that is the lowest validation score, not 0.
    """
    if index >= len(sorted_scores):
        return 1.0
    # Rounded down: rounding up could let the score at ``index`` under the bar too.
    return math.floor(float(sorted_scores[index]) * 1e6) / 1e6
