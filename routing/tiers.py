"""Tiers, the thresholds between them and a request's score: plain values, no model.

Thresholds(0.3, 0.7).tier(0.5)  # -> "medium"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Tier = Literal["small", "medium", "large"]


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
class Score:
    """A complexity score in [0, 1] and the main reasons behind it."""

    value: float
    reasons: tuple[str, ...]
