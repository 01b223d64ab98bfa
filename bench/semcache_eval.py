"""Precision and recall of the semantic cache on the development pairs.

    python -m bench.semcache_eval [--embedder wordllama] [--compare hash] [--refit]
                                  [--limit N] [--json out.json]

Pairs are split deterministically by sha256 of their ``id`` into a "tune"
half and a "report" half; every reported number comes from the report half.
A pair "hits" as a lookup would: cosine at or above the threshold, then the
guard, then (``wordllama``) the reranker at its cut.

* ``wordllama``: the threshold and the reranker were fitted together on the
  tune half by ``bench.semcache_fit`` and are read from the shipped model
  file; ``--refit`` fits them again here from the tune half first.
* other embedders: the threshold is chosen here, the lowest whose guarded
  precision on the tune half, label noise aside, reaches ``--target-precision``.

Output: precision, recall and false-hit rate per threshold without the
guard, with it, and with guard and reranker; the precision-recall curve over
the reranker's cut at the default threshold; results per data source;
edited pairs with known answers (``bench.semcache_adversarial``); and the
``--compare`` embedder at its own default on the same half.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.semcache_adversarial import adversarial_pairs
from bench.semcache_cost import lookup_cost
from bench.semcache_pairs import DEV_SET, Pair, is_tune, load_pairs
from bench.semcache_scoring import (
    Rates,
    Scored,
    Setup,
    adversarial,
    build_setup,
    by_source,
    choose,
    cut_curve,
    hits,
    rates,
    table,
)
from cache.semantic.rerank import MODEL_FILE, RerankModel
from cache.semantic.service import default_threshold
from cache.semantic.wordllama import WORDLLAMA

MODEL_PATH = Path(__file__).resolve().parents[1] / "cache" / "semantic" / MODEL_FILE


def _fmt(r: Rates) -> str:
    return f"{r.precision:>6.4f} {r.recall:>6.4f} {r.false_hit_rate:>7.5f}"


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    """Precision, recall and false-hit rate per threshold and stage."""
    stages = [s for s in ("raw", "guard", "rerank") if s in rows[0]]
    head = " | ".join(f"{s + ': prec':>12} {'recall':>6} {'FHR':>7}" for s in stages)
    print(f"{'thr':>6} | {head} | p clean")
    for row in rows:
        body = " | ".join(f"{'':>6}{_fmt(row[s])}" for s in stages)
        print(f"{row['threshold']:>6.3f} | {body} | {row['precision_clean']:.4f}")


def load_rerank_model(args: argparse.Namespace, pairs: Sequence[Pair]) -> dict[str, Any]:
    """The shipped model, or (``--refit``) one fitted here on the tune half."""
    shipped: dict[str, Any] = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    RerankModel.from_dict(shipped)  # the serving code must accept it
    if not args.refit:
        return shipped
    from bench.semcache_fit import fit
    from bench.semcache_trees import TreeParams

    fitted = fit(pairs, target=args.target_precision_fit, params=TreeParams(), data=Path(args.data))
    same = fitted["threshold"] == shipped["threshold"] and fitted["cut"] == shipped["cut"]
    print(
        f"refit on the tune half: threshold {fitted['threshold']}, cut {fitted['cut']:.4f} "
        f"({'same as' if same else 'differs from'} the shipped model)"
    )
    return fitted


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole evaluation; returns what ``--json`` writes."""
    started = time.perf_counter()
    pairs = load_pairs(Path(args.data), args.limit)
    tune = [p for p in pairs if is_tune(p)]
    report = [p for p in pairs if not is_tune(p)]
    cases = adversarial_pairs(report)
    model = load_rerank_model(args, pairs) if args.embedder == WORDLLAMA else None
    setup = build_setup(
        args.embedder, pairs, [c[3] for c in cases], model, content_words=args.content_words
    )
    cut = float(model["cut"]) if model else None
    tune_rows = table(setup.scored(tune), cut)
    scored = setup.scored(report)
    report_rows = table(scored, cut)
    if model is not None:
        chosen, how = float(model["threshold"]), "fitted with the reranker on the tune half"
    else:
        chosen, how = choose(tune_rows, args.target_precision), "chosen on the tune half"
    print(f"embedder={args.embedder} guard={setup.policy} pairs={len(pairs)}", end=" ")
    print(f"tune={len(tune)} report={len(report)}")
    print(f"embedding: {setup.embedded.seconds_per_text * 1e6:.0f} us per text")
    if model is not None:
        print(f"reranker: {len(model['trees'])} trees, cut {cut:.4f}")
    print(f"default threshold {default_threshold(args.embedder)}; evaluated at {chosen} ({how})")
    print("\ntune half (the reranker's columns are in-sample: it was fitted on these pairs)")
    print_table(tune_rows)
    print("\nreport half")
    print_table(report_rows)
    result: dict[str, Any] = {
        "embedder": args.embedder,
        "pairs": len(pairs),
        "threshold": chosen,
        "cut": cut,
        "embed_us_per_text": setup.embedded.seconds_per_text * 1e6,
        "tune": _plain(tune_rows),
        "report": _plain(report_rows),
    }
    result |= report_details(setup, scored, cases, chosen, cut)
    if args.compare and args.compare != args.embedder:
        result["compare"] = compare(args.compare, report, Rates(**result["at_default"]))
    if model is not None:
        result["cost"] = lookup_cost(setup, [s for s in scored if s.similarity >= chosen])
    result["seconds"] = time.perf_counter() - started
    print(f"\ntotal {result['seconds']:.1f} s")
    return result


def report_details(
    setup: Setup,
    scored: Sequence[Scored],
    cases: Sequence[tuple[str, str, str, str]],
    chosen: float,
    cut: float | None,
) -> dict[str, Any]:
    """The PR curve over the cut, per-source numbers, edited pairs, the headline."""
    out: dict[str, Any] = {}
    if cut is not None:
        out["cut_curve"] = cut_curve(scored, chosen)
        print(f"\nreport half at threshold {chosen}, by reranker cut (precision-recall curve):")
        for row in out["cut_curve"]:
            print(f"  cut {row['cut']:.2f}: precision {row['precision']:.4f}", end=" ")
            print(f"recall {row['recall']:.4f} hits {row['hits']}")
    out["by_source"] = by_source(scored, chosen, cut)
    print("\nper source at the default (report half):")
    for name, v in out["by_source"].items():
        print(f"  {name:32} pairs {v['pairs']:6d} precision {v['precision']:.4f}", end=" ")
        print(f"recall {v['recall']:.4f} FHR {v['false_hit_rate']:.5f}")
    out["adversarial"] = adversarial(setup, cases, chosen, cut)
    print("\nedited pairs at the default (copy/*, pair/*: known wrong; dup/*: known right)")
    print("hit rate without guard / with guard / served:")
    for name, v in out["adversarial"].items():
        print(f"  {name:16} n={int(v['pairs']):6d} {v['hit_rate']:.4f} /", end=" ")
        print(f"{v['hit_rate_guarded']:.4f} / {v['hit_rate_final']:.4f}")
    same = [s for s in scored if setup.info.near_duplicate(s.pair.a, s.pair.b)]
    different = sum(1 - s.pair.label for s in same)
    out["identical_after_normalisation"] = {"pairs": len(same), "labelled_different": different}
    print(f"\npairs identical after normalisation: {len(same)},", end=" ")
    print(f"{different} of them labelled different ({different / max(1, len(same)):.1%})")
    final = rates(scored, hits(scored, chosen, cut=cut))
    out["at_default"] = asdict(final)
    print(f"\nreport half at the default: precision {final.precision:.4f},", end=" ")
    print(f"recall {final.recall:.4f}, false-hit rate {final.false_hit_rate:.5f}")
    return out


def compare(spec: str, report: Sequence[Pair], final: Rates) -> dict[str, Any]:
    """``spec`` at its own default threshold and guard on the same report half."""
    other = build_setup(spec, report, [], None)
    threshold = default_threshold(spec)
    scored = other.scored(report)
    r = rates(scored, hits(scored, threshold))
    ratio = final.recall / r.recall if r.recall else float("inf")
    print(f"{spec} at its default {threshold}: precision {r.precision:.4f},", end=" ")
    print(f"recall {r.recall:.4f}; recall ratio {ratio:.2f}x")
    return {"embedder": spec, "threshold": threshold, **asdict(r), "recall_ratio": ratio}


def _plain(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: asdict(v) if isinstance(v, Rates) else v for k, v in row.items()} for row in rows]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--embedder", default=WORDLLAMA)
    parser.add_argument(
        "--compare", default="hash", help="embedder to compare with at its default ('' for none)"
    )
    parser.add_argument(
        "--refit", action="store_true", help="refit the wordllama reranker on the tune half first"
    )
    parser.add_argument("--limit", type=int, default=None, help="use the N lowest-ranked pairs")
    parser.add_argument("--data", default=str(DEV_SET))
    parser.add_argument(
        "--target-precision",
        type=float,
        default=0.98,
        help="threshold choice for other embedders (clean)",
    )
    parser.add_argument("--target-precision-fit", type=float, default=0.95, help="--refit's target")
    parser.add_argument(
        "--content-words",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="guard also requires the same content words (default: the embedder's policy)",
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
