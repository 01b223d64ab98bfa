"""Random-hyperplane signatures (SimHash) that pre-filter candidates cheaply.

Each vector gets a ``bits``-bit signature: bit i is the sign of its
projection on hyperplane i. For unit vectors at angle theta, each bit differs
with probability theta/pi, so the Hamming distance between two signatures
estimates the angle. A lookup first drops every stored entry whose distance
is far beyond what the similarity threshold allows (four standard deviations
of slack), using one XOR and ``int.bit_count`` per entry, and computes exact
cosine only for the rest.

Hyperplanes are very sparse (a handful of +1/-1 coordinates each, Li et al.'s
"very sparse random projections"), so a projection is two C-level sums over
``itemgetter`` picks, and they come from a seeded generator so every replica
computes the same signatures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter

DEFAULT_BITS = 256
DEFAULT_SEED = 0x5E3A
_SIGMAS = 4.0


@dataclass(frozen=True, slots=True)
class SimHasher:
    """Signatures for vectors of one dimension."""

    dim: int
    bits: int
    _planes: tuple[tuple[Callable[[Sequence[float]], tuple[float, ...]], ...], ...]

    @classmethod
    def create(cls, dim: int, *, bits: int = DEFAULT_BITS, seed: int = DEFAULT_SEED) -> SimHasher:
        """Hyperplanes drawn from ``seed``: equal arguments give equal signatures."""
        rng = random.Random(f"{seed}:{dim}:{bits}")
        per_plane = max(2, math.isqrt(dim))
        planes = []
        for _ in range(bits):
            picked = rng.sample(range(dim), min(dim, per_plane))
            half = len(picked) // 2
            planes.append((_getter(picked[:half]), _getter(picked[half:])))
        return cls(dim, bits, tuple(planes))

    def signature(self, vector: Sequence[float]) -> int:
        """The ``bits``-bit signature of ``vector``."""
        sig = 0
        for bit, (plus, minus) in enumerate(self._planes):
            if sum(plus(vector)) - sum(minus(vector)) > 0.0:
                sig |= 1 << bit
        return sig

    def max_distance(self, threshold: float) -> int:
        """Largest Hamming distance a pair at cosine >= ``threshold`` plausibly shows."""
        angle = math.acos(max(-1.0, min(1.0, threshold)))
        p = angle / math.pi
        return min(
            self.bits, math.ceil(self.bits * p + _SIGMAS * math.sqrt(self.bits * p * (1 - p))) + 2
        )


def _getter(indexes: list[int]) -> Callable[[Sequence[float]], tuple[float, ...]]:
    if len(indexes) == 1:
        only = itemgetter(indexes[0])
        return lambda v: (only(v),)
    return itemgetter(*indexes)
