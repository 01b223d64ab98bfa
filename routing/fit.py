"""Fit the router on ``routing/data/`` and write its model files.

    python -m routing.fit                 # writes routing/weights.json and the exemplars
    python -m routing.fit --out DIR       # somewhere else

Deterministic: the embedding, the fits (a fixed number of Newton steps) and
the validation splits (leave one source out, and folds fixed by a hash of
each row's id) are the same on every run, and numbers are rounded before they
are written, so a rerun writes the same bytes.

What it does, in order:

1. Embeds every prompt and computes its counted features; targets come from
   ``routing.dataset``.
2. Compares the candidate models (``routing.candidates``: a linear model and a
   neighbour model, each with a few settings) leave-one-source-out: each
   source with measured outcomes is scored by models that never saw it, and
   judged by APGR. The linear model is kept unless the best neighbour model
   beats it by more than one standard error of their per-source differences.
3. Fits the chosen model on every row; scores every row out of fold (5
   folds) and turns ``routing.quality_target`` values into thresholds on the
   rows whose answers were measured for a model of every tier
   (``routing.calibrate``).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routing import candidates as cand
from routing.calibrate import TARGETS, TIER_COSTS, operating_points
from routing.dataset import (
    ALPACA_CEILING,
    ALPACA_TIERS,
    DATA_DIR,
    DATA_FILES,
    MMLU,
    MMLU_TIERS,
    content_sha256,
    fold_of,
    load_examples,
)
from routing.embedding import TextEmbedder
from routing.evaluate import mean_and_error
from routing.model import write_model

OOF_FOLDS = 5
SNIPPET_CHARS = 60
_DIGITS = 6


def _r(value: float) -> float:
    return round(float(value), _DIGITS)


def snippet(text: str) -> str:
    """The opening words of a prompt, safe for a response header: printable ASCII, no quotes."""
    flat = " ".join(text.split())
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in flat)
    return safe if len(safe) <= SNIPPET_CHARS else safe[: SNIPPET_CHARS - 3].rstrip() + "..."


def _within_error(best: cand.Result, other: cand.Result) -> bool:
    """Whether ``other`` is within one standard error of ``best`` (per-source differences)."""
    diffs = [best.per_source[s] - other.per_source[s] for s in best.per_source]
    mean_diff, error = mean_and_error(diffs)
    return mean_diff <= error


def _simplest(results: Sequence[cand.Result]) -> cand.Result:
    """The most regularised candidate within one standard error of the best: the largest
    length prior (closest to the prompt length alone), then the most neighbours."""
    best = max(results, key=cand.rank_key)
    close = [r for r in results if _within_error(best, r)]
    return max(close, key=lambda r: (r.spec.beta, r.spec.k, r.mean))


def choose(results: Sequence[cand.Result]) -> tuple[cand.Result, dict[str, Any]]:
    """The validation rule: the linear family unless the neighbour family is clearly better,
    then within the family the most regularised setting that is not clearly worse."""
    kinds = [k for k in ("linear", "neighbours") if any(r.spec.kind == k for r in results)]
    best = {k: max((r for r in results if r.spec.kind == k), key=cand.rank_key) for k in kinds}
    kind, mean_diff, error = kinds[0], 0.0, 0.0
    if len(kinds) == 2:
        lin, nb = best["linear"], best["neighbours"]
        diffs = [nb.per_source[s] - lin.per_source[s] for s in lin.per_source]
        mean_diff, error = mean_and_error(diffs)
        kind = "neighbours" if mean_diff > error else "linear"
    chosen = _simplest([r for r in results if r.spec.kind == kind])
    return chosen, {
        "rule": (
            "mean leave-one-source-out APGR over the sources with measured outcomes. Family: "
            "linear unless the best neighbour candidate beats the best linear one by more than "
            "one standard error of their per-source differences. Setting: within the family, "
            "the largest length prior (then the most neighbours) whose mean is within one "
            "standard error of the family's best"
        ),
        "best": {k: r.spec.name for k, r in best.items()},
        "family_difference": _r(mean_diff),
        "family_standard_error": _r(error),
        "chosen": chosen.spec.name,
    }


def _calibration(prepared: cand.Prepared, spec: cand.Spec) -> list[dict[str, Any]]:
    folds = np.array([fold_of(e.id, OOF_FOLDS) for e in prepared.examples])
    scores = np.full(len(folds), np.nan)
    for fold in range(OOF_FOLDS):
        train = np.flatnonzero(prepared.trainable & (folds != fold))
        test = np.flatnonzero(folds == fold)
        scores[test] = cand.fit(prepared, spec, train).scores(prepared, test)
    rows = [
        i for i, e in enumerate(prepared.examples) if e.family == MMLU and e.qualities is not None
    ]
    points = operating_points(
        [float(scores[i]) for i in rows],
        [prepared.examples[i].qualities or (0.0, 0.0, 0.0) for i in rows],
    )
    return [
        {
            "quality_target": p.quality_target,
            "small_max": p.thresholds.small_max,
            "medium_max": p.thresholds.medium_max,
            "shares": dict(zip(("small", "medium", "large"), map(_r, p.shares), strict=True)),
            "quality_kept": _r(p.quality_kept),
            "relative_cost": _r(p.relative_cost),
        }
        for p in points
    ]


def fit(out: Path, *, data: Sequence[Path] | None = None) -> dict[str, Any]:
    """Fit, validate and write the model files to ``out``; returns the weights file's content."""
    files = list(data or [DATA_DIR / name for name in DATA_FILES])
    examples = load_examples(files)
    prepared = cand.prepare(examples, TextEmbedder.load())
    by_source, length_by_source = cand.compare(prepared, level="source")
    by_family, length_by_family = cand.compare(prepared, level="family")
    chosen, selection = choose(by_source)
    final = cand.fit(prepared, chosen.spec, np.flatnonzero(prepared.trainable))
    weights = final.weights_json()
    weights["operating_points"] = _calibration(prepared, chosen.spec)
    weights["metadata"] = {
        "data": {p.name: content_sha256(p) for p in files},
        "training_rows": int(prepared.trainable.sum()),
        "selection": selection,
        "validation_by_source": cand.table(by_source, length_by_source, chosen),
        "validation_by_family": cand.table(
            by_family, length_by_family, next(r for r in by_family if r.spec == chosen.spec)
        ),
        "targets": (
            "how much worse the cheap tier's answer is, ranked within each family: AlpacaEval "
            f"1 - min(1, small-tier judge preference / 0.5) in [0, {ALPACA_CEILING}]; Arena-Hard 1; "
            "MATH the level; MMLU-Pro P(large-tier model right, small-tier model wrong)"
        ),
        "tiers": {"alpaca_eval": dict(ALPACA_TIERS), "mmlu_pro": dict(MMLU_TIERS)},
        "calibration": (
            f"{OOF_FOLDS}-fold out-of-fold scores of the MMLU-Pro rows (correctness measured for "
            f"models of every tier); least relative cost (tier costs {TIER_COSTS}) keeping the "
            f"quality target; targets {TARGETS[0]}..{TARGETS[-1]}"
        ),
    }
    notes = [
        {
            "source": e.source,
            "label": e.label,
            "target": round(t, 4),
            "text": snippet(e.last_user_text),
        }
        for e, t in zip(
            (prepared.examples[i] for i in final.exemplar_rows),
            (float(prepared.targets[i]) for i in final.exemplar_rows),
            strict=True,
        )
    ]
    vectors = prepared.vectors[final.exemplar_rows].astype(np.float16)
    write_model(out, weights, vectors, notes)
    return weights


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--data", type=Path, nargs="*", help="data files (default: routing/data)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = fit(args.out, data=args.data)
    print(cand.format_table(weights["metadata"]["validation_by_source"]))
    print(f"chosen: {weights['metadata']['selection']['chosen']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
