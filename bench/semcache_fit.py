"""Fit the semantic cache's reranker, its cut and the default threshold on the tune half.

    python -m bench.semcache_fit [--out cache/semantic/rerank_wordllama.json]

Only tune-half pairs are read (split by sha256 of the pair id, as in
``bench.semcache_eval``, which reports on the other half):

1. Every text is embedded with ``wordllama`` as the cache embeds a turn. The
   candidate pool is the tune pairs at cosine >= ``POOL_FLOOR`` that the
   guard allows: what could reach the reranker.
2. Features (``cache.semantic.pair_features``) for each pool pair.
3. Out-of-fold scores: five folds by a hash of the pair id, each scored by
   trees fitted on the other four.
4. For each cosine threshold of the grid, pool pairs at or above it are
   ranked by out-of-fold score, and the largest top set whose precision,
   less one standard error, reaches ``--target-precision`` is taken; its
   recall counts every tune positive, pooled or not. The threshold with the
   highest recall wins.
5. The shipped trees are fitted on the whole pool. A model scores its own
   training rows higher than unseen ones, so its cut is not the out-of-fold
   score but the score at which it accepts as many pool pairs (at the chosen
   threshold) as the out-of-fold scores did.

Deterministic: no randomness anywhere, so a rerun writes the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.semcache_adversarial import swap_word
from bench.semcache_pairs import (
    DEV_SET,
    Pair,
    TextInfo,
    embed_texts,
    feature_rows,
    is_tune,
    load_pairs,
    word_vectors,
)
from bench.semcache_trees import TreeParams, fit_trees, predict
from cache.semantic.pair_features import FEATURE_NAMES
from cache.semantic.rerank import MODEL_FILE
from cache.semantic.service import default_guard_policy
from cache.semantic.wordllama import WORDLLAMA

POOL_FLOOR = 0.80
THRESHOLD_GRID = [round(POOL_FLOOR + 0.01 * i, 2) for i in range(16)]
FOLDS = 5
SYNTHETIC_WEIGHT = 1.0
ACCEPTED = 2.0  # the score of a near-duplicate: above any probability
OUT = Path(__file__).resolve().parents[1] / "cache" / "semantic" / MODEL_FILE


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen operating point and what the out-of-fold scores said about it."""

    threshold: float
    accepted: int  # pool pairs accepted at the threshold by the out-of-fold scores
    oof_precision: float
    oof_recall: float


@dataclass
class Pool:
    """Rows that reach the reranker: tune pairs, then the synthetic negatives."""

    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray
    real: np.ndarray  # False for synthetic rows: in the fit, never in precision or recall
    near_dup: np.ndarray  # served without the reranker: never fitted on, always accepted
    positives: int  # every tune positive, the recall denominator

    @property
    def cosine(self) -> np.ndarray:
        return self.x[:, 0]


def fold_of(pair: Pair) -> int:
    """A pair's cross-validation fold, from its id alone."""
    return int.from_bytes(hashlib.sha256(b"fold:" + pair.id.encode()).digest()[:4], "big") % FOLDS


def synthetic_negatives(tune: Sequence[Pair]) -> list[tuple[Pair, str, str]]:
    """(source pair, text, text with one content word swapped), never a true match.

    Without them the trees learn from the data that two long statements at
    high cosine are nearly always the same, and serve "... under
    investigation" for "... under review" (``bench.semcache_adversarial``).
    """
    donors = [p.b for p in tune]
    out = []
    for p in tune:
        swapped = swap_word(p.a, donors)
        if swapped is not None:
            out.append((p, p.a, swapped))
    return out


def build_pool(pairs: Sequence[Pair], *, floor: float = POOL_FLOOR) -> tuple[Pool, float]:
    """The tune half's rows that reach the reranker; also seconds per embedded text."""
    tune = [p for p in pairs if is_tune(p)]
    synthetic = synthetic_negatives(tune)
    rows = [(p, p.a, p.b, p.label, True) for p in tune]
    rows += [(p, a, b, 0, False) for p, a, b in synthetic]
    texts = [t for _, a, b, _, _ in rows for t in (a, b)]
    embedded = embed_texts(WORDLLAMA, texts)
    info = TextInfo.of(texts, with_words=True)
    policy = default_guard_policy(WORDLLAMA)
    kept = [
        (row, cos)
        for row in rows
        if (cos := embedded.cosine(row[1], row[2])) >= floor
        and info.guard_ok(row[1], row[2], policy)
    ]
    x = feature_rows([(a, b, cos) for (_, a, b, _, _), cos in kept], info, word_vectors(embedded))
    pool = Pool(
        x=x,
        y=np.asarray([row[3] for row, _ in kept], dtype=np.float64),
        fold=np.asarray([fold_of(row[0]) for row, _ in kept]),
        real=np.asarray([row[4] for row, _ in kept]),
        near_dup=np.asarray([info.near_duplicate(row[1], row[2]) for row, _ in kept]),
        positives=sum(p.label for p in tune),
    )
    return pool, embedded.seconds_per_text


def fit_rows(pool: Pool, rows: np.ndarray, params: TreeParams) -> dict[str, Any]:
    """Trees fitted on ``rows`` of the pool, near-duplicates left out."""
    use = rows & ~pool.near_dup
    weight = np.where(pool.real[use], 1.0, SYNTHETIC_WEIGHT)
    return fit_trees(pool.x[use], pool.y[use], params, weight=weight)


def scores_of(pool: Pool, model: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    """Model scores of ``rows``; near-duplicates rank above everything (always accepted)."""
    return np.where(pool.near_dup[rows], ACCEPTED, predict(model, pool.x[rows]))


def out_of_fold(pool: Pool, params: TreeParams) -> np.ndarray:
    """Each pool row scored by trees fitted on the other folds."""
    scores = np.zeros(len(pool.y))
    for k in range(FOLDS):
        held = pool.fold == k
        scores[held] = scores_of(pool, fit_rows(pool, ~held, params), held)
    return scores


def choose(pool: Pool, scores: np.ndarray, target: float) -> Choice | None:
    """The threshold whose best top set at precision >= ``target`` has the highest recall."""
    best: Choice | None = None
    for threshold in THRESHOLD_GRID:
        at = (pool.cosine >= threshold) & pool.real
        order = np.argsort(-scores[at], kind="stable")
        hits = np.cumsum(pool.y[at][order])
        size = np.arange(1, len(hits) + 1)
        precision = hits / size
        # One standard error of margin: the report half samples other pairs.
        reach = np.nonzero(precision - np.sqrt(precision * (1 - precision) / size) >= target)[0]
        if not len(reach):
            continue
        k = int(reach[-1])
        recall = float(hits[k]) / pool.positives
        if best is None or recall > best.oof_recall:
            best = Choice(threshold, k + 1, float(precision[k]), recall)
    return best


def matched_cut(in_sample: np.ndarray, at: np.ndarray, accepted: int) -> float:
    """The score at which ``in_sample`` accepts ``accepted`` of the pairs marked ``at``."""
    ranked = np.sort(in_sample[at])[::-1]
    return float(ranked[min(accepted, len(ranked)) - 1])


def fit(
    pairs: Sequence[Pair], *, target: float, params: TreeParams, data: Path = DEV_SET
) -> dict[str, object]:
    """The whole fit; returns the model file's content."""
    started = time.perf_counter()
    pool, per_text_s = build_pool(pairs)
    scores = out_of_fold(pool, params)
    choice = choose(pool, scores, target)
    if choice is None:
        raise SystemExit(f"no threshold reaches precision {target} out of fold")
    everything = np.ones(len(pool.y), dtype=bool)
    model = fit_rows(pool, everything, params)
    print(
        f"pool of {len(pool.y)} rows; embedding {per_text_s * 1e6:.0f} us per text; "
        f"fitted in {time.perf_counter() - started:.1f} s"
    )
    in_sample = scores_of(pool, model, everything)
    cut = matched_cut(in_sample, (pool.cosine >= choice.threshold) & pool.real, choice.accepted)
    return {
        "features": list(FEATURE_NAMES),
        "threshold": choice.threshold,
        "cut": cut,
        "fit": {
            "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
            "half": "tune",
            "pool_floor": POOL_FLOOR,
            "pool_pairs": int(pool.real.sum()),
            "pool_near_duplicates": int((pool.real & pool.near_dup).sum()),
            "synthetic_negatives": int((~pool.real).sum()),
            "synthetic_weight": SYNTHETIC_WEIGHT,
            "tune_positives": pool.positives,
            "target_precision": target,
            "params": asdict(params),
            "out_of_fold": asdict(choice),
        },
        **model,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", default=str(DEV_SET))
    parser.add_argument("--target-precision", type=float, default=0.95)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    data = Path(args.data)
    result = fit(
        load_pairs(data, None), target=args.target_precision, params=TreeParams(), data=data
    )
    Path(args.out).write_text(model_json(result), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "trees"}, indent=2))
    return 0


def model_json(result: dict[str, object]) -> str:
    """The model file's text: readable header, one tree per line."""
    head = {k: v for k, v in result.items() if k != "trees"}
    trees = result["trees"]
    assert isinstance(trees, list)
    lines = ",\n".join("  " + json.dumps(tree, separators=(",", ":")) for tree in trees)
    return json.dumps(head, indent=1)[:-2] + ',\n "trees": [\n' + lines + "\n ]\n}\n"


if __name__ == "__main__":
    sys.exit(main())
