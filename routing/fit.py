"""Fit the complexity scorer's weights on the routing development set.

    python -m routing.fit --data ../shared/data/routing/routing_dev.jsonl --out routing/weights.json

Deterministic: the split is a fixed hash rule, the fit is a fixed number of
Newton steps of L2-regularised logistic regression (standard library only),
and numbers are rounded before they are written, so a rerun on the same data
writes the same bytes.

Label ("a cheap model suffices"):
- AlpacaEval rows: the judge's probability that the cheap model's answer
  (``CHEAP_MODEL``) is preferred over the strong reference (``STRONG_MODEL``,
  ~0.5 against itself) is at least ``ALPACA_SUFFICES_AT`` (half a tie).
- Arena-Hard rows: never (hard real-user prompts).
- MATH: levels 1-2 suffice, 4-5 do not. Level 3 is left unlabelled (out of the
  fit and of the AUC) because small models of the target class are split on it.
Split: a row is held out when ``int(sha256(id)[:8], 16) % 5 == 0`` (about 20%).
Only training rows are fitted on; every reported metric is on held-out rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routing.features import FEATURE_NAMES, extract
from routing.scorer import Thresholds, sigmoid

CHEAP_MODEL = "gpt-3.5-turbo-1106"
STRONG_MODEL = "gpt4_1106_preview"
ALPACA_SUFFICES_AT = 0.25
SPLIT_RULE = "held out iff int(sha256(id)[:8], 16) % 5 == 0"
NEWTON_STEPS = 12
L2 = 1.0
# A hard prompt may go to the small tier at most this often on training data.
HARD_TO_SMALL_MAX = 0.10
# A cheap-enough prompt may go to the large tier at most this often on training data.
EASY_TO_LARGE_MAX = 0.10
# Used for features that never vary in the development set (single-turn, no tools),
# so they still count in production; log-odds per unit of the feature.
PRIOR_WEIGHTS: Mapping[str, float] = {
    "history_len": 1.0,
    "depth": 0.5,
    "tools_offered": 0.8,
    "tool_results": 0.8,
    "structured": 0.3,
    "non_english": 0.3,
    "stack_trace": 0.8,
}
CURVE_SHARES = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled prompt of the development set."""

    id: str
    source: str
    body: Mapping[str, Any]
    cheap_suffices: bool | None
    hard: bool
    outcomes: Mapping[str, float | None]
    output_len_chars: Mapping[str, int]

    @property
    def held_out(self) -> bool:
        """Whether the split rule holds this row out of the fit."""
        return is_held_out(self.id)


def is_held_out(row_id: str) -> bool:
    """The fixed split rule (``SPLIT_RULE``)."""
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % 5 == 0


def label_of(raw: Mapping[str, Any]) -> bool | None:
    """Whether a cheap model suffices for a raw data-set row; None when unlabelled."""
    source = str(raw["source"])
    if source.startswith("alpaca_eval"):
        cheap = raw.get("outcomes", {}).get(CHEAP_MODEL)
        return None if cheap is None else float(cheap) >= ALPACA_SUFFICES_AT
    if source.startswith("arena_hard"):
        return False
    level = raw.get("difficulty_level")
    if level in (1, 2):
        return True
    if level in (4, 5):
        return False
    return None


def load_rows(path: Path) -> list[Row]:
    """Parse the development set."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            raw = json.loads(line)
            source = str(raw["source"])
            rows.append(
                Row(
                    id=str(raw["id"]),
                    source=source,
                    body={"messages": raw["prompt"]},
                    cheap_suffices=label_of(raw),
                    hard=source.startswith("arena_hard") or raw.get("difficulty_level") in (4, 5),
                    outcomes=raw.get("outcomes") or {},
                    output_len_chars=raw.get("output_len_chars") or {},
                )
            )
    return rows


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the system is small and well-posed)."""
    n = len(rhs)
    a = [[*row, rhs[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            if factor:
                for c in range(col, n + 1):
                    a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def fit_logistic(xs: Sequence[Sequence[float]], ys: Sequence[int]) -> list[float]:
    """L2-regularised logistic regression by Newton steps; returns [bias, *weights]."""
    d = len(xs[0]) + 1
    w = [0.0] * d
    rows = [[1.0, *x] for x in xs]
    for _ in range(NEWTON_STEPS):
        grad = [L2 * w[j] if j else 0.0 for j in range(d)]
        hess = [[(L2 if i == j and i else 0.0) for j in range(d)] for i in range(d)]
        for row, y in zip(rows, ys, strict=True):
            p = sigmoid(sum(wj * xj for wj, xj in zip(w, row, strict=True)))
            err = p - y
            s = p * (1.0 - p)
            for i in range(d):
                ri = row[i]
                if ri == 0.0:
                    continue
                grad[i] += err * ri
                si = s * ri
                hrow = hess[i]
                for j in range(i, d):
                    hrow[j] += si * row[j]
        for i in range(d):
            for j in range(i):
                hess[i][j] = hess[j][i]
        step = _solve(hess, grad)
        w = [wj - sj for wj, sj in zip(w, step, strict=True)]
    return w


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pairs = sorted(zip(scores, positives, strict=True), key=lambda item: item[0])
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid_rank = (i + j + 1) / 2
        rank_sum += mid_rank * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    n_pos = sum(1 for p in positives if p)
    n_neg = len(positives) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def quality_curve(
    scored: Sequence[tuple[float, Row]], shares: Iterable[float]
) -> list[dict[str, float]]:
    """Quality recovered vs share sent to the strong model, most complex first.

    Quality of a prompt is the judge's preference of a model's answer over the
    strong reference; recovered = (routed - cheap) / (strong - cheap). A random
    router at the same share recovers exactly that share on average.
    """
    rows = [
        (score, row)
        for score, row in scored
        if row.outcomes.get(CHEAP_MODEL) is not None and row.outcomes.get(STRONG_MODEL) is not None
    ]
    rows.sort(key=lambda item: (-item[0], item[1].id))
    cheap = [float(r.outcomes[CHEAP_MODEL] or 0.0) for _, r in rows]
    strong = [float(r.outcomes[STRONG_MODEL] or 0.0) for _, r in rows]
    n = len(rows)
    gap = (sum(strong) - sum(cheap)) / n
    points = []
    for share in shares:
        k = round(share * n)
        routed = (sum(strong[:k]) + sum(cheap[k:])) / n
        recovered = (routed - sum(cheap) / n) / gap
        points.append({"strong_share": share, "recovered": recovered, "random": k / n})
    return points


def choose_thresholds(scores: Sequence[float], hard: Sequence[bool]) -> Thresholds:
    """Tier bounds from training scores (see ``HARD_TO_SMALL_MAX``, ``EASY_TO_LARGE_MAX``)."""
    hard_scores = sorted(s for s, h in zip(scores, hard, strict=True) if h)
    easy_scores = sorted(s for s, h in zip(scores, hard, strict=True) if not h)
    small_max = hard_scores[int(len(hard_scores) * HARD_TO_SMALL_MAX)]
    large_from = easy_scores[
        min(len(easy_scores) - 1, int(len(easy_scores) * (1 - EASY_TO_LARGE_MAX)))
    ]
    return Thresholds(round(small_max, _DIGITS), round(max(small_max, large_from), _DIGITS))


def held_out_metrics(scored: Sequence[tuple[float, Row]]) -> dict[str, Any]:
    """AUC and quality curve on held-out rows only."""
    labelled = [(s, r) for s, r in scored if r.cheap_suffices is not None]
    curve = quality_curve(scored, CURVE_SHARES)
    alpaca = [(s, r) for s, r in labelled if r.source.startswith("alpaca_eval")]
    return {
        "rows": len(scored),
        "labelled_rows": len(labelled),
        "auc_not_cheap": auc([s for s, _ in labelled], [not r.cheap_suffices for _, r in labelled]),
        "auc_not_cheap_alpaca_only": auc(
            [s for s, _ in alpaca], [not r.cheap_suffices for _, r in alpaca]
        ),
        "curve": curve,
        "curve_rows": sum(1 for _, r in scored if r.outcomes),
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, _DIGITS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def fit(data: Path) -> dict[str, Any]:
    """Fit on the training split of ``data`` and return the weights file's content."""
    rows = load_rows(data)
    feats = {r.id: extract(r.body) for r in rows}
    train = [r for r in rows if not r.held_out and r.cheap_suffices is not None]
    xs = [feats[r.id] for r in train]
    varying = [j for j in range(len(FEATURE_NAMES)) if len({x[j] for x in xs}) > 1]
    coef = fit_logistic(
        [[x[j] for j in varying] for x in xs], [int(not r.cheap_suffices) for r in train]
    )
    weights = [PRIOR_WEIGHTS.get(name, 0.0) for name in FEATURE_NAMES]
    for k, j in enumerate(varying):
        weights[j] = round(coef[k + 1], _DIGITS)
    bias = round(coef[0], _DIGITS)
    means = [round(sum(x[j] for x in xs) / len(xs), _DIGITS) for j in range(len(FEATURE_NAMES))]

    def score(r: Row) -> float:
        """The fitted model's score of a row (before the weights are written)."""
        return sigmoid(bias + sum(w * x for w, x in zip(weights, feats[r.id], strict=True)))

    thresholds = choose_thresholds([score(r) for r in train], [not r.cheap_suffices for r in train])
    held = [(score(r), r) for r in rows if r.held_out]
    result: dict[str, Any] = _rounded(
        {
            "bias": bias,
            "features": {
                name: {"weight": weights[j], "mean": means[j], "learned": j in varying}
                for j, name in enumerate(FEATURE_NAMES)
            },
            "thresholds": {"small_max": thresholds.small_max, "medium_max": thresholds.medium_max},
            "metadata": {
                "data_file": data.name,
                "data_sha256": file_sha256(data),
                "split_rule": SPLIT_RULE,
                "train_rows": len(train),
                "label_rule": (
                    f"cheap suffices: alpaca_eval P({CHEAP_MODEL} preferred over "
                    f"{STRONG_MODEL}) >= {ALPACA_SUFFICES_AT}; arena_hard never; "
                    "MATH level 1-2 yes, 4-5 no, 3 unlabelled"
                ),
                "score_meaning": "P(a cheap model is not enough)",
                "fit": f"logistic regression, L2={L2}, {NEWTON_STEPS} Newton steps",
                "thresholds_rule": (
                    f"small_max: <= {HARD_TO_SMALL_MAX:.0%} of hard train rows below it; "
                    f"medium_max: <= {EASY_TO_LARGE_MAX:.0%} of cheap-enough train rows at or above it"
                ),
                "quality_models": {"cheap": CHEAP_MODEL, "strong": STRONG_MODEL},
                "held_out": held_out_metrics(held),
            },
        }
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = fit(args.data)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    held = result["metadata"]["held_out"]
    print(f"held-out AUC (not cheap): {held['auc_not_cheap']:.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
