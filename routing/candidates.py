"""The candidate router models, fitted and validated the same way.

A candidate is a model family (``linear`` or ``neighbours``), its settings
(``k`` neighbours) and a length prior ``beta``: the final log-odds add
``beta`` standard deviations of the content score per standard deviation of
the prompt's length, since longer prompts tend to need stronger models. Every
candidate ends in the same form, which is what the proxy computes::

    log-odds = intercept + content(embedding) + sum(weight_f * (feature_f - centre_f))

Counted features the data set never varies (earlier turns, tools, tool
results) get the fixed ``PRIOR_WEIGHTS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from routing.dataset import ARENA, MATH, Example, fold_of, targets
from routing.embedding import TextEmbedder
from routing.evaluate import apgr
from routing.features import FEATURE_NAMES, embedding_text, features, parts_of
from routing.learn import NeighbourIndex, fit_linear, logit, sigmoid

Vector = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]

BETAS = (0.0, 0.5, 1.0, 1.5)
NEIGHBOUR_KS = (25, 50, 100)
TEMPERATURE = 10.0
# Log-odds per unit of the features the data hardly varies: the prompts are
# single-turn, offer no tools, and only 7 of 9,074 hold a code block.
PRIOR_WEIGHTS = {
    "context_len": 1.0,
    "depth": 0.5,
    "tools_offered": 1.0,
    "tool_results": 0.8,
    "code_fence": 0.5,
}
# Arena-Hard's share of a family's weight: one source of one label.
ARENA_WEIGHT = 0.5
LEARNED = ("last_len",)
QUOTED_PER_FAMILY = 300
_QUOTE_BUCKETS = 10_000
_LEN = FEATURE_NAMES.index("last_len")
_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Prepared:
    """Every row, embedded and featurised once."""

    examples: Sequence[Example]
    vectors: npt.NDArray[np.float32]
    feats: npt.NDArray[np.float64]
    targets: Vector
    trainable: npt.NDArray[np.bool_]
    cheap: Vector
    strong: Vector
    """Quality of the cheap and the strong tier's answer where measured (MATH: by level)."""


def prepare(examples: Sequence[Example], embedder: TextEmbedder) -> Prepared:
    """Embed and featurise every example."""
    parts = [parts_of({"messages": e.messages}) for e in examples]
    vectors = embedder.embed_many([embedding_text(p) for p in parts])
    feats = np.array([features(p) for p in parts], dtype=np.float64)
    t = np.array([np.nan if v is None else v for v in targets(examples)])
    cheap, strong = outcome_pairs(examples)
    return Prepared(examples, vectors, feats, t, ~np.isnan(t), cheap, strong)


def outcome_pairs(examples: Sequence[Example]) -> tuple[Vector, Vector]:
    """Quality of the cheap (small) and the strong (large) tier per row; NaN where unknown."""
    cheap = np.full(len(examples), np.nan)
    strong = np.full(len(examples), np.nan)
    for i, e in enumerate(examples):
        if e.qualities is not None:
            cheap[i], strong[i] = e.qualities[0], e.qualities[2]
        elif e.family == MATH and e.raw_measure is not None:
            # No outcomes, only a level: read level L as the cheap tier losing (L - 1) / 4.
            cheap[i], strong[i] = (5.0 - e.raw_measure) / 4.0, 1.0
    return cheap, strong


@dataclass(frozen=True, slots=True)
class Spec:
    """One candidate's family and settings."""

    kind: Literal["linear", "neighbours"]
    beta: float
    k: int = 0

    @property
    def name(self) -> str:
        """A readable name, as tables show it."""
        family = "linear" if self.kind == "linear" else f"neighbours k={self.k}"
        return f"{family}, length prior {self.beta:g}"


SPECS = tuple(Spec("linear", b) for b in BETAS) + tuple(
    Spec("neighbours", b, k) for k in NEIGHBOUR_KS for b in BETAS
)


def sample_weights(prepared: Prepared, rows: Rows, per_family: float | None = None) -> Vector:
    """Each row's part of ``per_family`` spread evenly over its family's rows (Arena-Hard
    ``ARENA_WEIGHT`` of it); by default every family weighs as much as an equal share of
    the rows."""
    families = [prepared.examples[i].family for i in rows]
    counts = {f: families.count(f) for f in set(families)}
    total = len(rows) / len(counts) if per_family is None else per_family
    return np.array([total / counts[f] * (ARENA_WEIGHT if f == ARENA else 1.0) for f in families])


@dataclass(frozen=True, slots=True)
class Fitted:
    """A candidate fitted on some rows: the parameters of the final formula."""

    spec: Spec
    intercept: float
    embedding_weights: Vector | None
    index: NeighbourIndex | None
    feature_weights: Vector
    centres: Vector
    exemplar_rows: Rows
    """The training prompts shipped for the neighbour model and for explanations."""
    beta_free: float | None = None
    """The content score's spread, which the length prior is measured against."""

    def content(self, prepared: Prepared, rows: Rows) -> Vector:
        """The embedding's part of the log-odds for ``rows``."""
        if self.embedding_weights is not None:
            out: Vector = prepared.vectors[rows].astype(np.float64) @ self.embedding_weights
            return out
        assert self.index is not None
        estimate = self.index.estimate_many(
            prepared.vectors[rows], k=self.spec.k, temperature=TEMPERATURE
        )
        return logit(estimate)

    def scores(self, prepared: Prepared, rows: Rows, content: Vector | None = None) -> Vector:
        """Scores in [0, 1] of ``rows``."""
        c = self.content(prepared, rows) if content is None else content
        pushes = (prepared.feats[rows] - self.centres) @ self.feature_weights
        return sigmoid(self.intercept + c + pushes)

    def weights_json(self) -> dict[str, Any]:
        """The weights file's model part."""
        out: dict[str, Any] = {
            "kind": self.spec.kind,
            "intercept": _round(self.intercept),
            "features": {
                name: {
                    "weight": _round(w),
                    "centre": _round(c),
                    "learned": self.spec.kind == "linear" and name in LEARNED,
                }
                for name, w, c in zip(
                    FEATURE_NAMES, self.feature_weights, self.centres, strict=True
                )
            },
            "length_prior_beta": self.spec.beta,
        }
        if self.embedding_weights is not None:
            out["linear"] = {"embedding_weights": [_round(w) for w in self.embedding_weights]}
        else:
            out["neighbours"] = {"k": self.spec.k, "temperature": TEMPERATURE}
        return out


def _round(value: float) -> float:
    return round(float(value), _DIGITS)


def _length_weight(content_sd: float, prepared: Prepared, rows: Rows, beta: float) -> float:
    sd = float(prepared.feats[rows, _LEN].std())
    return beta * content_sd / sd if sd > 0 else 0.0


def neighbour_spread(prepared: Prepared, rows: Rows, k: int) -> float:
    """The neighbour content score's spread, measured on a fifth of ``rows`` against the rest."""
    # Its own split: the out-of-fold calibration already splits rows by fold_of(id, 5).
    probe = np.array([fold_of("spread:" + prepared.examples[i].id, 5) == 0 for i in rows])
    held = NeighbourIndex(prepared.vectors[rows[~probe]], prepared.targets[rows[~probe]])
    estimate = held.estimate_many(prepared.vectors[rows[probe]], k=k, temperature=TEMPERATURE)
    return float(logit(estimate).std())


def fit(prepared: Prepared, spec: Spec, rows: Rows, *, base: Fitted | None = None) -> Fitted:
    """Fit ``spec`` on ``rows`` (trainable rows only).

    The length prior only adds to one weight, so ``base`` (the same family and
    ``k`` fitted on the same rows with no prior) is reused when given.
    """
    if base is None or base.beta_free is None:
        base = _fit_without_prior(prepared, spec, rows)
    assert base.beta_free is not None
    weights = base.feature_weights.copy()
    weights[_LEN] += _length_weight(base.beta_free, prepared, rows, spec.beta)
    return replace(base, spec=spec, feature_weights=weights)


def quoted_rows(prepared: Prepared, rows: Rows) -> Rows:
    """The training prompts explanations quote: about ``QUOTED_PER_FAMILY`` of each family
    (Arena-Hard, whose every prompt has the same label, ``ARENA_WEIGHT`` of that).

    Finding the nearest one costs a pass over their vectors on every routed
    request; at a few thousand the pass no longer fits in a core's cache and
    costs several times more, and an equal number per family keeps
    conversational prompts from being explained by STEM questions only
    because those are the most numerous.
    """
    share = sample_weights(prepared, rows, per_family=QUOTED_PER_FAMILY)
    keep = [
        fold_of("quoted:" + prepared.examples[i].id, _QUOTE_BUCKETS) < _QUOTE_BUCKETS * p
        for i, p in zip(rows, share, strict=True)
    ]
    kept: Rows = rows[np.asarray(keep, dtype=bool)]
    return kept


def _fit_without_prior(prepared: Prepared, spec: Spec, rows: Rows) -> Fitted:
    centres = prepared.feats[rows].mean(axis=0)
    weights = np.array([PRIOR_WEIGHTS.get(n, 0.0) for n in FEATURE_NAMES])
    if spec.kind == "linear":
        learned = [FEATURE_NAMES.index(n) for n in LEARNED]
        x = np.hstack([prepared.feats[rows][:, learned] - centres[learned], prepared.vectors[rows]])
        groups = [prepared.examples[i].group for i in rows]
        model = fit_linear(
            x, prepared.targets[rows], groups, sample_weights=sample_weights(prepared, rows)
        )
        weights[learned] = model.weights[: len(learned)]
        emb = model.weights[len(learned) :]
        spread = float((prepared.vectors[rows] @ emb).std())
        intercept = model.intercepts["chat"]
        quoted = quoted_rows(prepared, rows)
        return Fitted(spec, intercept, emb, None, weights, centres, quoted, beta_free=spread)
    index = NeighbourIndex(prepared.vectors[rows], prepared.targets[rows])
    spread = neighbour_spread(prepared, rows, spec.k)
    return Fitted(spec, 0.0, None, index, weights, centres, rows, beta_free=spread)


@dataclass(frozen=True, slots=True)
class Result:
    """A candidate's held-out APGR per source (or family)."""

    spec: Spec
    per_source: dict[str, float]

    @property
    def mean(self) -> float:
        """Mean over the held-out sources."""
        return float(np.mean(list(self.per_source.values())))


def rank_key(result: Result) -> tuple[float, float, int]:
    """Best mean first; on a tie, the smaller length prior, then the fewer neighbours."""
    return (round(result.mean, _DIGITS), -result.spec.beta, -result.spec.k)


def held_out_keys(prepared: Prepared, level: str) -> list[str]:
    """Sources (or families) with outcomes to judge a ranking by."""
    keys = {
        _key(e, level)
        for e, c in zip(prepared.examples, prepared.cheap, strict=True)
        if not np.isnan(c)
    }
    return sorted(keys)


def _key(example: Example, level: str) -> str:
    return example.source if level == "source" else example.family


def compare(prepared: Prepared, *, level: str) -> tuple[list[Result], dict[str, float]]:
    """Every candidate's leave-one-out APGR, and that of the prompt's length alone."""
    keys = np.array([_key(e, level) for e in prepared.examples])
    per: dict[Spec | str, dict[str, float]] = {s: {} for s in SPECS}
    per["length"] = {}
    for key in held_out_keys(prepared, level):
        test = np.flatnonzero((keys == key) & ~np.isnan(prepared.cheap))
        train = np.flatnonzero(prepared.trainable & (keys != key))
        cheap, strong = list(prepared.cheap[test]), list(prepared.strong[test])

        def judge(
            scores: Vector, cheap: list[float] = cheap, strong: list[float] = strong
        ) -> float:
            return apgr(scores, cheap, strong)

        per["length"][key] = judge(prepared.feats[test, _LEN])
        linear = _fit_without_prior(prepared, Spec("linear", 0.0), train)
        linear_content = linear.content(prepared, test)
        for spec in (s for s in SPECS if s.kind == "linear"):
            fitted = fit(prepared, spec, train, base=linear)
            per[spec][key] = judge(fitted.scores(prepared, test, linear_content))
        top = NeighbourIndex(prepared.vectors[train], prepared.targets[train]).top(
            prepared.vectors[test], max(NEIGHBOUR_KS)
        )
        bases = {
            k: _fit_without_prior(prepared, Spec("neighbours", 0.0, k), train) for k in NEIGHBOUR_KS
        }
        for spec in (s for s in SPECS if s.kind == "neighbours"):
            fitted = fit(prepared, spec, train, base=bases[spec.k])
            assert fitted.index is not None
            content = logit(fitted.index.estimate_top(*top, k=spec.k, temperature=TEMPERATURE))
            per[spec][key] = judge(fitted.scores(prepared, test, content))
    return [Result(s, per[s]) for s in SPECS], per["length"]


def table(results: Sequence[Result], length: dict[str, float], chosen: Result) -> dict[str, Any]:
    """Per held-out key: random, length alone, the chosen model; every candidate's mean."""
    rows = {
        key: {
            "random": 0.5,
            "length": round(length[key], 4),
            "router": round(chosen.per_source[key], 4),
        }
        for key in chosen.per_source
    }
    return {
        "rows": rows,
        "candidates": {r.spec.name: round(r.mean, 4) for r in results},
        "mean": {
            "random": 0.5,
            "length": round(float(np.mean(list(length.values()))), 4),
            "router": round(chosen.mean, 4),
        },
    }


def format_table(validation: dict[str, Any]) -> str:
    """The validation table as text."""
    lines = [f"{'held out':<34} {'random':>7} {'length':>7} {'router':>7}"]
    for key, row in {**validation["rows"], "mean": validation["mean"]}.items():
        lines.append(f"{key:<34} {row['random']:>7.3f} {row['length']:>7.3f} {row['router']:>7.3f}")
    return "\n".join(lines)
