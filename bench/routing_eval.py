"""Held-out evaluation of the complexity router.

    python -m bench.routing_eval [--data PATH] [--weights PATH] [--json] [--cv]

Scores the held-out split of the routing development set (see
``routing.fit.SPLIT_RULE``) with the shipped weights and reports: share of
prompts per tier, share of hard prompts (Arena-Hard, MATH level 4-5) sent to
the small tier, AUC, quality recovered vs share sent to the strong model next
to a random router, and the estimated cost against always using the large
baseline model at example list prices. Prompt tokens are estimated as
characters / 4; expected output is the strong reference answer's length / 4
where the data has it (AlpacaEval), else ``DEFAULT_OUTPUT_TOKENS``.

``--cv`` instead refits the scorer on folds of the training rows and reports
the same metrics on the left-out fold (see ``cross_validate``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from routing.features import content_text, extract
from routing.fit import (
    CURVE_SHARES,
    STRONG_MODEL,
    Row,
    auc,
    family_of,
    file_sha256,
    held_out_metrics,
    learn,
    load_rows,
    quality_curve,
    tier_bounds,
)
from routing.scorer import Weights, load_weights, score_request, sigmoid
from routing.select import Candidate, expected_cost_micro, needs_of, select_model

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "routing" / "data" / "routing_dev.jsonl.gz"
DEFAULT_OUTPUT_TOKENS = 500
CV_FOLDS = 5
_M = Decimal(1_000_000)


def _model(name: str, tier: str, input_price: str, output_price: str) -> Candidate:
    return Candidate(
        name=name,
        provider="openai",
        tier=tier,  # type: ignore[arg-type]
        context_window=128_000,
        max_output=16_384,
        supports_tools=True,
        supports_vision=True,
        supports_json_schema=True,
        supports_reasoning=False,
        input_price=Decimal(input_price),
        cached_input_price=Decimal(input_price) / 2,
        output_price=Decimal(output_price),
    )


EXAMPLE_MODELS = (
    _model("gpt-4o-mini", "small", "0.15", "0.60"),
    _model("gpt-4.1-mini", "medium", "0.40", "1.60"),
    _model("gpt-4o", "large", "2.50", "10.00"),
)
BASELINE = EXAMPLE_MODELS[2]


def _tokens(row: Row) -> tuple[int, int]:
    chars = sum(len(content_text(m.get("content"))) for m in row.body["messages"])
    out_chars = row.output_len_chars.get(STRONG_MODEL)
    out = out_chars // 4 if out_chars else DEFAULT_OUTPUT_TOKENS
    return -(-chars // 4), out


def _conversation_of_tokens(tokens: int) -> dict[str, Any]:
    """A multi-turn coding conversation of about ``tokens`` tokens (4 chars each)."""
    turn = (
        "Refactor this handler and explain the trade-offs step by step; it must stay "
        "backwards compatible.\n```python\ndef handler(req):\n    return db[req['id']]\n```\n"
    )
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a senior engineer."}]
    chars = 0
    while chars < tokens * 4:
        role = "user" if len(messages) % 2 else "assistant"
        messages.append({"role": role, "content": turn * 5})
        chars += len(turn) * 5
    if messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": turn})
    return {"model": "auto", "messages": messages, "max_tokens": 800}


def scoring_p50_ms(weights: Weights, *, tokens: int = 2000, runs: int = 2000) -> float:
    """Median time to score one conversation of about ``tokens`` tokens."""
    body = _conversation_of_tokens(tokens)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        score_request(body, weights=weights)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _shares_by_family(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, float]]:
    families = sorted({family for family, _ in counts})
    shares = {}
    for family in families:
        total = sum(n for (f, _), n in counts.items() if f == family)
        shares[family] = {t: counts[family, t] / total for t in ("small", "medium", "large")}
    return shares


def _auc_by_family(labelled: Sequence[tuple[float, Row]]) -> dict[str, float]:
    return {
        family: auc(
            [s for s, r in labelled if family_of(r.source) == family],
            [not r.cheap_suffices for _, r in labelled if family_of(r.source) == family],
        )
        for family in ("alpaca_eval", "hendrycks_math")
    }


def evaluate(rows: Sequence[Row], weights: Weights) -> dict[str, Any]:
    """Every reported number for the held-out ``rows``."""
    held = [r for r in rows if r.held_out]
    tiers: Counter[str] = Counter()
    family_tiers: Counter[tuple[str, str]] = Counter()
    scored: list[tuple[float, Row]] = []
    routed_micro = baseline_micro = 0
    hard_small = hard = 0
    for row in held:
        score = score_request(row.body, weights=weights)
        prompt, out = _tokens(row)
        decision = select_model(
            score=score,
            candidates=EXAMPLE_MODELS,
            needs=needs_of(row.body, prompt_tokens=prompt),
            thresholds=weights.thresholds,
            mode="auto-only",
            requested=None,
            sticky=None,
            expected_output_tokens=out,
        )
        tiers[decision.tier] += 1
        family_tiers[family_of(row.source), decision.tier] += 1
        scored.append((score.value, row))
        hard += row.hard
        hard_small += row.hard and decision.tier == "small"
        routed_micro += expected_cost_micro(decision.model, prompt_tokens=prompt, output_tokens=out)
        baseline_micro += expected_cost_micro(BASELINE, prompt_tokens=prompt, output_tokens=out)
    labelled = [(s, r) for s, r in scored if r.cheap_suffices is not None]
    saved = baseline_micro - routed_micro
    return {
        "held_out_rows": len(held),
        "tier_share": {t: tiers[t] / len(held) for t in ("small", "medium", "large")},
        "hard_to_small_share": hard_small / hard if hard else 0.0,
        "tier_share_by_source": _shares_by_family(family_tiers),
        "auc_not_cheap": auc([s for s, _ in labelled], [not r.cheap_suffices for _, r in labelled]),
        "auc_by_source": _auc_by_family(labelled),
        "curve": quality_curve(scored, CURVE_SHARES),
        "cost": {
            "models": {c.tier: c.name for c in EXAMPLE_MODELS},
            "baseline_usd": str(Decimal(baseline_micro) / _M),
            "routed_usd": str(Decimal(routed_micro) / _M),
            "saved_usd": str(Decimal(saved) / _M),
            "saved_percent": str((Decimal(saved) * 100 / baseline_micro).quantize(Decimal("0.1"))),
        },
    }


def _cv_fold(row: Row) -> int:
    # Independent of the held-out rule, which uses the first 8 hex digits.
    return int(hashlib.sha256(row.id.encode()).hexdigest()[8:16], 16) % CV_FOLDS


def cross_validate(rows: Sequence[Row]) -> dict[str, Any]:
    """Refit on ``CV_FOLDS`` - 1 folds of the training rows, score the last; mean of folds.

    Held-out rows take no part, so design choices can be compared here
    without looking at the held-out split.
    """
    train_rows = [r for r in rows if not r.held_out]
    folds = []
    for k in range(CV_FOLDS):
        fit_rows = [r for r in train_rows if _cv_fold(r) != k and r.cheap_suffices is not None]
        xs = [extract(r.body) for r in fit_rows]
        bias, coefs, _ = learn(fit_rows, xs)

        def score(body: Mapping[str, Any], bias: float = bias, coefs: list[float] = coefs) -> float:
            return sigmoid(bias + sum(w * x for w, x in zip(coefs, extract(body), strict=True)))

        bounds = tier_bounds([score(r.body) for r in fit_rows], fit_rows)
        scored = [(score(r.body), r) for r in train_rows if _cv_fold(r) == k]
        hard = [s for s, r in scored if r.hard]
        folds.append(
            {
                **held_out_metrics(scored),
                "hard_to_small_share": sum(s < bounds.small_max for s in hard) / len(hard),
            }
        )
    keys = ("auc_not_cheap", "auc_not_cheap_alpaca_only", "auc_not_cheap_math_only")
    return {
        "folds": CV_FOLDS,
        **{k: statistics.mean(f[k] for f in folds) for k in (*keys, "hard_to_small_share")},
        "curve_minus_random": [
            statistics.mean(f["curve"][i]["recovered"] - f["curve"][i]["random"] for f in folds)
            for i in range(len(CURVE_SHARES))
        ],
    }


def _print(report: dict[str, Any]) -> None:
    print(f"held-out rows: {report['held_out_rows']}  data sha256: {report['data_sha256'][:12]}")
    print("tier share: " + ", ".join(f"{t} {v:.1%}" for t, v in report["tier_share"].items()))
    print(f"hard prompts sent to small: {report['hard_to_small_share']:.1%}")
    for family, shares in report["tier_share_by_source"].items():
        print(f"  {family}: " + ", ".join(f"{t} {v:.1%}" for t, v in shares.items()))
    by_source = ", ".join(f"{k} {v:.3f}" for k, v in report["auc_by_source"].items())
    print(f"AUC (cheap model not enough): {report['auc_not_cheap']:.3f} (within {by_source})")
    print("quality recovered vs share to strong (router / random):")
    for p in report["curve"]:
        print(f"  {p['strong_share']:.0%}: {p['recovered']:.3f} / {p['random']:.3f}")
    cost = report["cost"]
    print(f"scoring p50 for a 2,000-token conversation: {report['score_p50_ms']:.3f} ms")
    print(
        f"cost vs always {BASELINE.name}: ${cost['routed_usd']} instead of ${cost['baseline_usd']}"
        f" (saves ${cost['saved_usd']}, {cost['saved_percent']}%)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Held-out evaluation of the router.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--cv", action="store_true", help="cross-validate the fit inside the training rows instead"
    )
    args = parser.parse_args(argv)
    if args.cv:
        print(json.dumps(cross_validate(load_rows(args.data)), indent=2))
        return 0
    report = evaluate(load_rows(args.data), load_weights(args.weights))
    report["data_sha256"] = file_sha256(args.data)
    report["score_p50_ms"] = scoring_p50_ms(load_weights(args.weights))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
