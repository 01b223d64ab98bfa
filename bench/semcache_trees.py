"""Gradient-boosted regression trees for a binary label, in numpy: the reranker's fitter.

Logistic loss, Newton leaf values with L2 regularisation, depth-limited trees
grown on quantile bins of each feature (histogram splits), a fixed number of
rounds and no randomness, so a refit on the same rows gives the same trees.
Trees come out in the layout ``cache.semantic.rerank.Tree`` reads: parallel
arrays, node 0 the root, feature -1 a leaf, "x >= threshold" going right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class TreeParams:
    """The fit's hyperparameters, compared by out-of-fold precision on the tune half only."""

    rounds: int = 100
    depth: int = 4
    learning_rate: float = 0.1
    l2: float = 1.0
    min_leaf: int = 200
    bins: int = 32


@dataclass
class _Grower:
    codes: np.ndarray  # bin index per row and feature
    edges: list[np.ndarray]
    grad: np.ndarray
    hess: np.ndarray
    params: TreeParams

    def __post_init__(self) -> None:
        self.nodes: list[list[Any]] = []

    def grow(self, rows: np.ndarray, level: int) -> int:
        me = len(self.nodes)
        self.nodes.append([-1, 0.0, -1, -1, 0.0])
        g, h = float(self.grad[rows].sum()), float(self.hess[rows].sum())
        split = self._best_split(rows, g, h) if level < self.params.depth else None
        if split is None:
            self.nodes[me][4] = -g / (h + self.params.l2) * self.params.learning_rate
            return me
        feature, k = split
        goes_left = self.codes[rows, feature] <= k
        left = self.grow(rows[goes_left], level + 1)
        right = self.grow(rows[~goes_left], level + 1)
        self.nodes[me] = [feature, float(self.edges[feature][k]), left, right, 0.0]
        return me

    def _best_split(self, rows: np.ndarray, g: float, h: float) -> tuple[int, int] | None:
        p = self.params
        if len(rows) < 2 * p.min_leaf:
            return None
        parent = g * g / (h + p.l2)
        best: tuple[float, int, int] | None = None
        for feature, edges in enumerate(self.edges):
            size = len(edges) + 1
            codes = self.codes[rows, feature]
            cg = np.cumsum(np.bincount(codes, weights=self.grad[rows], minlength=size))[:-1]
            ch = np.cumsum(np.bincount(codes, weights=self.hess[rows], minlength=size))[:-1]
            cc = np.cumsum(np.bincount(codes, minlength=size))[:-1]
            gain = cg**2 / (ch + p.l2) + (g - cg) ** 2 / (h - ch + p.l2) - parent
            gain[(cc < p.min_leaf) | (len(rows) - cc < p.min_leaf)] = -np.inf
            if not len(gain):
                continue
            k = int(np.argmax(gain))
            if gain[k] > 1e-9 and (best is None or gain[k] > best[0]):
                best = (float(gain[k]), feature, k)
        return None if best is None else (best[1], best[2])


def _edges(x: np.ndarray, bins: int) -> list[np.ndarray]:
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return [np.unique(np.quantile(x[:, j], quantiles)) for j in range(x.shape[1])]


def fit_trees(
    x: np.ndarray,
    y: np.ndarray,
    params: TreeParams = TreeParams(),
    *,
    weight: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit on rows ``x`` with labels ``y`` (0/1) and row weights; the model as ``{base, trees}``."""
    w = np.ones(len(y)) if weight is None else weight
    edges = _edges(x, params.bins)
    codes = np.stack(
        [np.searchsorted(edges[j], x[:, j], side="right") for j in range(x.shape[1])], axis=1
    )
    prior = float(np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6))
    base = float(np.log(prior / (1 - prior)))
    margin = np.full(len(y), base)
    trees = []
    for _ in range(params.rounds):
        p = 1.0 / (1.0 + np.exp(-margin))
        grower = _Grower(codes, edges, (p - y) * w, p * (1 - p) * w, params)
        grower.grow(np.arange(len(y)), 0)
        tree = {
            name: [node[i] for node in grower.nodes]
            for i, name in enumerate(("feature", "threshold", "left", "right", "value"))
        }
        trees.append(tree)
        margin += tree_values(tree, x)
    return {"base": base, "trees": trees}


def tree_values(tree: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The leaf value each row of ``x`` reaches in ``tree`` (vectorised walk)."""
    feature = np.asarray(tree["feature"])
    threshold = np.asarray(tree["threshold"], dtype=np.float64)
    left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
    node = np.zeros(len(x), dtype=np.int64)
    rows = np.arange(len(x))
    while True:
        f = feature[node]
        inner = f >= 0
        if not inner.any():
            break
        go_right = x[rows, np.maximum(f, 0)] >= threshold[node]
        node = np.where(inner, np.where(go_right, right[node], left[node]), node)
    return np.asarray(tree["value"], dtype=np.float64)[node]


def predict(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Probability per row of ``x``."""
    margin = np.full(len(x), float(model["base"]))
    for tree in model["trees"]:
        margin += tree_values(tree, x)
    return 1.0 / (1.0 + np.exp(-margin))
