"""Fit the complexity scorer's weights on the routing development set.

    python -m routing.fit --data routing/data/routing_dev.jsonl.gz --out routing/weights.json

Deterministic: the split is a fixed hash rule, the fit is a fixed number of
Newton steps of L2-regularised logistic regression (standard library only),
and numbers are rounded before they are written, so a rerun on the same data
writes the same bytes.

Label ("a cheap model suffices", used for AUC and tier bounds):
- AlpacaEval rows: the judge's probability that the cheap model's answer
  (``CHEAP_MODEL``) is preferred over the strong reference (``STRONG_MODEL``,
  ~0.5 against itself) is at least ``ALPACA_SUFFICES_AT`` (half a tie).
- Arena-Hard rows: never (hard real-user prompts).
- MATH: levels 1-2 suffice, 4-5 do not. Level 3 is left unlabelled (out of the
  fit and of the AUC) because small models of the target class are split on it.

Fit target: AlpacaEval rows get a soft label, 1 - min(1, p / 0.5) with p the
mean judge preference of the ``CHEAP_FAMILY`` answers over the strong reference
(how far the cheap class falls short of a tie, which is what the quality curve
measures; averaging the family denoises a single judgement); other rows their
binary label. Every source family carries the same total sample weight except
Arena-Hard (``ARENA_SHARE`` of it): it is hard as a whole source, and at full
weight its typical surface (long, technical) outweighs AlpacaEval's evidence
that long given-text tasks are where the cheap model holds up.
Model: a logistic regression over ``routing.features`` (a fixed math / code /
chat gate with per-domain copies), then ``chat_offset`` places chat prompts
against the other domains. Choices were compared by 5-fold cross-validation
inside the training rows only.
Split: a row is held out when ``int(sha256(id)[:8], 16) % 5 == 0`` (about 20%).
Only training rows are fitted on; every reported metric is on held-out rows.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from routing.features import BASE_FEATURE_NAMES, DOMAINS, FEATURE_NAMES, extract
from routing.scorer import Thresholds, sigmoid

CHEAP_MODEL = "gpt-3.5-turbo-1106"
STRONG_MODEL = "gpt4_1106_preview"
ALPACA_SUFFICES_AT = 0.25
# Answers of the cheap model's class whose mean judge preference is the soft target.
CHEAP_FAMILY = (
    "gpt-3.5-turbo-1106",
    "gpt-3.5-turbo-1106_concise",
    "gpt-3.5-turbo-1106_verbose",
    "gpt-3.5-turbo-0301",
)
# Judge preference of an answer as good as the strong reference (a tie).
TIE_PREFERENCE = 0.5
# Arena-Hard's total sample weight relative to each other source family.
ARENA_SHARE = 0.25
# Grid of the chat calibration offset (log-odds), see ``chat_offset``.
CHAT_OFFSET_STEP = 0.05
CHAT_OFFSET_MAX_STEPS = 80
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
    with data_lines(path) as f:
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


def data_lines(path: Path) -> TextIO:
    """A data file opened for reading text, decompressed when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a data file's content (after decompression for ``.gz``)."""
    data = path.read_bytes()
    return hashlib.sha256(gzip.decompress(data) if path.suffix == ".gz" else data).hexdigest()


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


def fit_logistic(
    xs: Sequence[Sequence[float]],
    ys: Sequence[float],
    *,
    sample_weights: Sequence[float] | None = None,
) -> list[float]:
    """Weighted L2-regularised logistic regression by Newton steps; returns [bias, *weights].

    Targets may be soft (any value in [0, 1]). Each row only touches its
    non-zero features, which keeps the fit fast on the sparse per-domain copies.
    """
    d = len(xs[0]) + 1
    w = [0.0] * d
    rows = [[1.0, *x] for x in xs]
    nonzero = [[i for i, v in enumerate(row) if v != 0.0] for row in rows]
    sws = sample_weights if sample_weights is not None else [1.0] * len(rows)
    for _ in range(NEWTON_STEPS):
        grad = [L2 * w[j] if j else 0.0 for j in range(d)]
        hess = [[(L2 if i == j and i else 0.0) for j in range(d)] for i in range(d)]
        for row, nz, y, sw in zip(rows, nonzero, ys, sws, strict=True):
            p = sigmoid(sum(w[i] * row[i] for i in nz))
            err = (p - y) * sw
            s = p * (1.0 - p) * sw
            for k, i in enumerate(nz):
                ri = row[i]
                grad[i] += err * ri
                si = s * ri
                hrow = hess[i]
                for j in nz[k:]:
                    hrow[j] += si * row[j]
        for i in range(d):
            for j in range(i):
                hess[i][j] = hess[j][i]
        step = _solve(hess, grad)
        w = [wj - sj for wj, sj in zip(w, step, strict=True)]
    return w


def family_of(source: str) -> str:
    """The data set a row comes from (``alpaca_eval/koala`` -> ``alpaca_eval``)."""
    return source.split("/", 1)[0]


def target_of(row: Row) -> float | None:
    """The fit target of a row: P(a cheap model is not enough); None when unlabelled."""
    if row.cheap_suffices is None:
        return None
    if family_of(row.source) != "alpaca_eval":
        return 0.0 if row.cheap_suffices else 1.0
    prefs = [p for m in CHEAP_FAMILY if (p := row.outcomes.get(m)) is not None]
    return 1.0 - min(1.0, sum(prefs) / len(prefs) / TIE_PREFERENCE)


def sample_weights(rows: Sequence[Row]) -> list[float]:
    """Equal total weight per source family (``ARENA_SHARE`` of it for Arena-Hard)."""
    counts = Counter(family_of(r.source) for r in rows)
    per_family = len(rows) / len(counts)
    return [
        per_family
        * (ARENA_SHARE if family_of(r.source) == "arena_hard_v0.1" else 1.0)
        / counts[family_of(r.source)]
        for r in rows
    ]


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


def choose_thresholds(
    scores: Sequence[float], *, hard: Sequence[bool], cheap_enough: Sequence[bool]
) -> Thresholds:
    """Tier bounds from training scores (see ``HARD_TO_SMALL_MAX``, ``EASY_TO_LARGE_MAX``).

    ``hard`` marks Arena-Hard and MATH level 4-5 rows (``Row.hard``), the set
    whose share in the small tier the evaluation reports; ``cheap_enough``
    marks rows a cheap model suffices for.
    """
    hard_scores = sorted(s for s, h in zip(scores, hard, strict=True) if h)
    easy_scores = sorted(s for s, e in zip(scores, cheap_enough, strict=True) if e)
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
    maths = [(s, r) for s, r in labelled if r.source.startswith("hendrycks_math")]
    return {
        "rows": len(scored),
        "labelled_rows": len(labelled),
        "auc_not_cheap": auc([s for s, _ in labelled], [not r.cheap_suffices for _, r in labelled]),
        "auc_not_cheap_alpaca_only": auc(
            [s for s, _ in alpaca], [not r.cheap_suffices for _, r in alpaca]
        ),
        "auc_not_cheap_math_only": auc(
            [s for s, _ in maths], [not r.cheap_suffices for _, r in maths]
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


def chat_offset(logits: Sequence[float], rows: Sequence[Row], *, chat: Sequence[bool]) -> float:
    """The log-odds to take off chat prompts (those in neither the math nor the code domain).

    Chat prompts are ranked by AlpacaEval's judge, which says how much the
    strong answer is preferred, not whether the cheap one is good enough; the
    cheap model is preferred on few of them, so the fitted chat level sits next
    to the hard sources. The offset is the least (in ``CHAT_OFFSET_STEP`` steps)
    that puts AlpacaEval training rows in the small tier at least as often as
    their label says a cheap model suffices. Rankings inside a domain do not change.
    """
    alpaca = [i for i, r in enumerate(rows) if family_of(r.source) == "alpaca_eval"]
    wanted = sum(1 for i in alpaca if rows[i].cheap_suffices) / len(alpaca)
    offset = 0.0
    for step in range(CHAT_OFFSET_MAX_STEPS + 1):
        offset = round(step * CHAT_OFFSET_STEP, _DIGITS)
        scores = [sigmoid(z - offset if c else z) for z, c in zip(logits, chat, strict=True)]
        small_max = tier_bounds(scores, rows).small_max
        if sum(1 for i in alpaca if scores[i] < small_max) >= wanted * len(alpaca):
            break
    return offset


def tier_bounds(scores: Sequence[float], rows: Sequence[Row]) -> Thresholds:
    """``choose_thresholds`` with the rows' hard and cheap-enough flags."""
    return choose_thresholds(
        scores, hard=[r.hard for r in rows], cheap_enough=[bool(r.cheap_suffices) for r in rows]
    )


def learn(train: Sequence[Row], xs: Sequence[Sequence[float]]) -> tuple[float, list[float], float]:
    """Bias, one weight per feature (priors where nothing varies) and the chat offset."""
    varying = [j for j in range(len(FEATURE_NAMES)) if len({x[j] for x in xs}) > 1]
    targets = [t for r in train if (t := target_of(r)) is not None]
    coef = fit_logistic(
        [[x[j] for j in varying] for x in xs], targets, sample_weights=sample_weights(train)
    )
    weights = [PRIOR_WEIGHTS.get(name, 0.0) for name in FEATURE_NAMES]
    for k, j in enumerate(varying):
        weights[j] = round(coef[k + 1], _DIGITS)
    flags = [FEATURE_NAMES.index(f"is_{d}") for d in DOMAINS]
    logits = [coef[0] + sum(w * v for w, v in zip(weights, x, strict=True)) for x in xs]
    offset = chat_offset(logits, train, chat=[not any(x[j] for j in flags) for x in xs])
    # Taking the offset off the bias and adding it back on each domain indicator
    # keeps the model one linear function of the features.
    for j in flags:
        weights[j] = round(weights[j] + offset, _DIGITS)
    return round(coef[0] - offset, _DIGITS), weights, offset


def fit(data: Path) -> dict[str, Any]:
    """Fit on the training split of ``data`` and return the weights file's content."""
    rows = load_rows(data)
    feats = {r.id: extract(r.body) for r in rows}
    train = [r for r in rows if not r.held_out and r.cheap_suffices is not None]
    xs = [feats[r.id] for r in train]
    bias, weights, offset = learn(train, xs)
    learned = {j for j in range(len(FEATURE_NAMES)) if len({x[j] for x in xs}) > 1}
    # Reference values for reasons: a base feature's training mean; 0 for domain
    # indicators and copies, so a request outside a domain gets no push from it.
    n_base = len(BASE_FEATURE_NAMES)
    means = [round(sum(x[j] for x in xs) / len(xs), _DIGITS) for j in range(n_base)]
    means += [0.0] * (len(FEATURE_NAMES) - n_base)

    def score(r: Row) -> float:
        """The fitted model's score of a row."""
        return sigmoid(bias + sum(w * x for w, x in zip(weights, feats[r.id], strict=True)))

    thresholds = tier_bounds([score(r) for r in train], train)
    held = [(score(r), r) for r in rows if r.held_out]
    result: dict[str, Any] = _rounded(
        {
            "bias": bias,
            "features": {
                name: {"weight": weights[j], "mean": means[j], "learned": j in learned}
                for j, name in enumerate(FEATURE_NAMES)
            },
            "thresholds": {"small_max": thresholds.small_max, "medium_max": thresholds.medium_max},
            "metadata": {
                "data_file": data.name,
                "data_sha256": file_sha256(data),
                "split_rule": SPLIT_RULE,
                "train_rows": len(train),
                **_rules(offset),
                "held_out": held_out_metrics(held),
            },
        }
    )
    return result


def _rules(offset: float) -> dict[str, Any]:
    return {
        "label_rule": (
            f"cheap suffices: alpaca_eval P({CHEAP_MODEL} preferred over "
            f"{STRONG_MODEL}) >= {ALPACA_SUFFICES_AT}; arena_hard never; "
            "MATH level 1-2 yes, 4-5 no, 3 unlabelled"
        ),
        "fit_target": (
            f"alpaca_eval: 1 - min(1, mean P(answer preferred over {STRONG_MODEL}) "
            f"over {', '.join(CHEAP_FAMILY)} / {TIE_PREFERENCE}); others: the binary label"
        ),
        "sample_weights": f"equal total weight per source family, arena_hard {ARENA_SHARE} of it",
        "domain_gate": "math / code / chat, see routing.features.domain_of",
        "chat_offset": offset,
        "chat_offset_rule": (
            "least offset (log-odds, taken off chat prompts) putting alpaca_eval train rows "
            "in the small tier at least as often as their label says cheap suffices"
        ),
        "score_meaning": "P(a cheap model is not enough)",
        "fit": f"logistic regression, L2={L2}, {NEWTON_STEPS} Newton steps",
        "thresholds_rule": (
            f"small_max: <= {HARD_TO_SMALL_MAX:.0%} of hard train rows (arena_hard, "
            "MATH level 4-5) below it; "
            f"medium_max: <= {EASY_TO_LARGE_MAX:.0%} of cheap-enough train rows at or above it"
        ),
        "quality_models": {"cheap": CHEAP_MODEL, "strong": STRONG_MODEL},
    }


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
