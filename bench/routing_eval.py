"""The router's quality, speed and size, in one report.

    python -m bench.routing_eval [--json]

* **Validation**: leave-one-source-out APGR of the shipped router, as
  ``python -m routing.fit`` measured and recorded it in ``routing/weights.json``
  (every source scored by models that never saw it), next to a random router,
  the prompt's length alone, and the previous keyword scorer (its scores of
  every prompt are in ``bench/data/previous_scorer.jsonl.gz``, produced at
  commit 55c870f; it was fitted on 80 % of the AlpacaEval and MATH rows, so
  its numbers there are optimistic).
* **The quality knob**: thresholds, tier shares, quality kept and relative
  cost for a few ``routing.quality_target`` values.
* **The demo's traffic**: the tier of each kind of request the demo sends.
* **Speed**: scoring time, embedding included, by prompt length.
* **Size**: resident memory the embedder and the model add to a process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from routing.candidates import outcome_pairs
from routing.dataset import load_examples
from routing.evaluate import apgr
from routing.model import DEFAULT_QUALITY_TARGET
from routing.scorer import Scorer

PREVIOUS = Path(__file__).resolve().parent / "data" / "previous_scorer.jsonl.gz"
SHOWN_TARGETS = (0.8, 0.85, 0.9, 0.95, 0.98, 1.0)
SPEED_LENGTHS = (100, 2_000, 100_000)
SPEED_RUNS = 400
_RSS_SCRIPT = """
import resource, sys
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
before = rss()
from routing.embedding import TextEmbedder
from routing.model import load_model
embedder = TextEmbedder.load()
embedder.embed("warm up")
after_embedder = rss()
model = load_model()
print(before, after_embedder, rss())
"""


def previous_by_key(level: str) -> dict[str, float]:
    """The previous scorer's APGR per source (or family), on every row with outcomes."""
    with gzip.open(PREVIOUS, "rt", encoding="utf-8") as f:
        scores = {row["id"]: row["score"] for row in map(json.loads, f)}
    examples = load_examples()
    cheap, strong = outcome_pairs(examples)
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        if cheap[i] == cheap[i]:  # not NaN
            groups.setdefault(e.source if level == "source" else e.family, []).append(i)
    return {
        key: apgr([scores[examples[i].id] for i in rows], cheap[rows], strong[rows])
        for key, rows in sorted(groups.items())
    }


def validation(weights: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded leave-one-out tables, with the previous scorer added."""
    out: dict[str, Any] = {}
    for level in ("source", "family"):
        table = weights["metadata"][f"validation_by_{level}"]
        previous = previous_by_key(level)
        rows = {k: {**v, "previous": round(previous[k], 4)} for k, v in table["rows"].items()}
        mean = {**table["mean"], "previous": round(statistics.mean(previous.values()), 4)}
        out[level] = {"rows": rows, "mean": mean}
    return out


def demo_mix(scorer: Scorer) -> dict[str, dict[str, int]]:
    """Tier of each demo prompt at the default quality target, by kind of request."""
    prompts = json.loads(
        resources.files("proxy.demo").joinpath("data/demo_prompts.json").read_text(encoding="utf-8")
    )
    thresholds = scorer.model.operating(DEFAULT_QUALITY_TARGET).thresholds
    mix: dict[str, dict[str, int]] = {}
    for kind, texts in prompts.items():
        if kind == "about":
            continue
        tiers = Counter(
            thresholds.tier(scorer.score({"messages": [{"role": "user", "content": t}]}).value)
            for t in texts
        )
        mix[kind] = dict(tiers)
    return mix


def speed(scorer: Scorer) -> dict[str, dict[str, float]]:
    """Scoring time in ms (p50, p99) by prompt length, embedding included."""
    base = "Please review the following design note and tell me what could go wrong. "
    out = {}
    for length in SPEED_LENGTHS:
        body = {
            "messages": [{"role": "user", "content": (base * (length // len(base) + 1))[:length]}]
        }
        for _ in range(20):
            scorer.score(body)
        times = []
        for _ in range(SPEED_RUNS):
            start = time.perf_counter()
            scorer.score(body)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[f"{length:,} chars"] = {
            "p50_ms": round(times[len(times) // 2], 3),
            "p99_ms": round(times[int(len(times) * 0.99)], 3),
        }
    return out


def memory() -> dict[str, float]:
    """RSS in MiB a fresh interpreter adds for the embedder (its libraries included), and
    then for the router's model."""
    result = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    before, embedder, model = map(float, result.stdout.split())
    return {"embedder_mib": round(embedder - before, 1), "model_mib": round(model - embedder, 1)}


def _print(report: Mapping[str, Any]) -> None:
    for level, table in report["validation"].items():
        print(f"leave-one-{level}-out APGR (random 0.5):")
        print(f"  {'held out':<30} {'length':>7} {'previous':>8} {'router':>7}")
        for key, row in {**table["rows"], "mean": table["mean"]}.items():
            print(
                f"  {key:<30} {row['length']:>7.3f} {row['previous']:>8.3f} {row['router']:>7.3f}"
            )
    print(f"chosen model: {report['chosen']}")
    print(
        "quality target -> thresholds, share small/medium/large, quality kept, cost vs all-large:"
    )
    for p in report["operating_points"]:
        s = p["shares"]
        print(
            f"  {p['quality_target']:.2f}: {p['small_max']:.3f} / {p['medium_max']:.3f}  "
            f"{s['small']:.0%} / {s['medium']:.0%} / {s['large']:.0%}  "
            f"{p['quality_kept']:.1%}  {p['relative_cost']:.0%}"
        )
    print(f"demo prompts by tier (quality target {DEFAULT_QUALITY_TARGET}):")
    for kind, tiers in report["demo_mix"].items():
        print(f"  {kind:<9} " + ", ".join(f"{t} {n}" for t, n in sorted(tiers.items())))
    print("scoring time, embedding included:")
    for length, t in report["speed"].items():
        print(f"  {length:>15}: p50 {t['p50_ms']:.3f} ms, p99 {t['p99_ms']:.3f} ms")
    mem = report["memory"]
    print(f"resident memory: embedder +{mem['embedder_mib']} MiB, model +{mem['model_mib']} MiB")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="The router's quality, speed and size.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    weights = json.loads(resources.files("routing").joinpath("weights.json").read_text())
    scorer = Scorer.load()
    report = {
        "validation": validation(weights),
        "chosen": weights["metadata"]["selection"]["chosen"],
        "operating_points": [
            p for p in weights["operating_points"] if p["quality_target"] in SHOWN_TARGETS
        ],
        "demo_mix": demo_mix(scorer),
        "speed": speed(scorer),
        "memory": memory(),
    }
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
