"""The two model families the fit compares, in plain numpy.

* ``fit_linear``: logistic regression on the embedding and the counted
  features, with one intercept per level group (chat, math, knowledge), so
  that families whose raw outcomes live on different scales only teach the
  model what varies *within* them. Fitted by Newton's method: a fixed number
  of exact steps, hence the same weights on every run.
* ``NeighbourIndex``: the outcomes of the most similar training prompts,
  averaged with weights that grow with similarity (as RouteLLM's
  similarity-weighted router does).

    model = fit_linear(x, targets, groups, sample_weights=w)
    logits = model.logits(x)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]

NEWTON_STEPS = 12
L2 = 1.0
# Probabilities are kept this far from 0 and 1 before taking log-odds.
EPSILON = 0.01


def logit(p: Vector) -> Vector:
    """Log-odds of probabilities, clipped to [EPSILON, 1 - EPSILON] first."""
    q = np.clip(p, EPSILON, 1.0 - EPSILON)
    out: Vector = np.log(q / (1.0 - q))
    return out


def sigmoid(z: Vector) -> Vector:
    """The logistic function."""
    out: Vector = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Per-group intercepts and one weight per input column."""

    intercepts: dict[str, float]
    weights: Vector

    def logits(self, x: Matrix, *, group: str) -> Vector:
        """Log-odds for the rows of ``x``, on ``group``'s intercept."""
        out: Vector = x @ self.weights + self.intercepts[group]
        return out


def fit_linear(
    x: Matrix,
    targets: Vector,
    groups: Sequence[str],
    *,
    sample_weights: Vector,
    l2: float = L2,
) -> LinearModel:
    """L2-regularised logistic regression with soft targets and per-group intercepts.

    Intercepts are not penalised. Columns that never vary get weight 0.
    """
    names = sorted(set(groups))
    onehot = np.array([[g == name for name in names] for g in groups], dtype=np.float64)
    design = np.hstack([onehot, x])
    penalty = np.concatenate([np.zeros(len(names)), np.full(x.shape[1], l2)])
    w = np.zeros(design.shape[1])
    for _ in range(NEWTON_STEPS):
        p = sigmoid(design @ w)
        grad = design.T @ ((p - targets) * sample_weights) + penalty * w
        hess = (design * (p * (1.0 - p) * sample_weights)[:, None]).T @ design
        w -= np.linalg.solve(hess + np.diag(penalty) + 1e-9 * np.eye(len(w)), grad)
    return LinearModel(dict(zip(names, map(float, w[: len(names)]), strict=True)), w[len(names) :])


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The nearest training prompts of one query, most similar first."""

    index: npt.NDArray[np.intp]
    similarity: Vector


class NeighbourIndex:
    """Unit vectors of training prompts and their targets; cosine similarity search."""

    def __init__(self, vectors: npt.NDArray[np.float32], targets: Vector) -> None:
        if len(vectors) != len(targets):
            raise ValueError("one target per vector")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.targets = targets

    def nearest(self, query: npt.NDArray[np.float32], k: int) -> Neighbours:
        """The ``k`` most similar training prompts to one unit vector."""
        sims = self.vectors @ query
        if k == 1:  # the explanation's one neighbour: argmax is several times cheaper
            best = int(np.argmax(sims))
            return Neighbours(np.array([best], dtype=np.intp), np.array([float(sims[best])]))
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]
        return Neighbours(top, sims[top].astype(np.float64))

    def estimate(self, neighbours: Neighbours, *, temperature: float) -> float:
        """Similarity-weighted mean of the neighbours' targets."""
        sims = neighbours.similarity
        weights = np.exp(temperature * (sims - sims[0]))
        return float((weights * self.targets[neighbours.index]).sum() / weights.sum())

    def top(self, queries: npt.NDArray[np.float32], k: int) -> tuple[npt.NDArray[np.intp], Matrix]:
        """For each row of ``queries``: its ``k`` nearest rows, most similar first, and their
        similarities."""
        k = min(k, len(self.vectors))
        index = np.empty((len(queries), k), dtype=np.intp)
        sims_out = np.empty((len(queries), k))
        block = 512  # keeps the similarity matrix small
        for start in range(0, len(queries), block):
            sims = queries[start : start + block] @ self.vectors.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            index[start : start + block] = np.take_along_axis(top, order, axis=1)
            sims_out[start : start + block] = np.take_along_axis(top_sims, order, axis=1)
        return index, sims_out

    def estimate_top(
        self, index: npt.NDArray[np.intp], sims: Matrix, *, k: int, temperature: float
    ) -> Vector:
        """``estimate`` for rows of ``top``'s output, using their first ``k`` neighbours."""
        s = sims[:, :k]
        weights = np.exp(temperature * (s - s[:, :1]))
        out: Vector = (weights * self.targets[index[:, :k]]).sum(1) / weights.sum(1)
        return out

    def estimate_many(
        self, queries: npt.NDArray[np.float32], *, k: int, temperature: float
    ) -> Vector:
        """``estimate`` for each row of ``queries`` (for fitting and validation)."""
        index, sims = self.top(queries, k)
        return self.estimate_top(index, sims, k=k, temperature=temperature)
