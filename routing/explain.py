"""Human-readable account of how one request would be scored and routed.

Backs ``spendgate route --explain FILE_OR_TEXT``: the caller reads the file
(if any) and passes its text, or passes a parsed chat body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from routing.features import FEATURE_NAMES, content_text, extract, messages_of
from routing.scorer import Score, Thresholds, Weights, logit_of, score_features
from routing.select import Candidate, Decision, Mode, needs_of, select_model

DEFAULT_EXPECTED_OUTPUT_TOKENS = 500


def body_of(text_or_body: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """A chat body from a body, a JSON body or message list as text, or plain prompt text."""
    if isinstance(text_or_body, Mapping):
        return text_or_body
    stripped = text_or_body.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, Mapping) and messages_of(parsed):
            return parsed
        if isinstance(parsed, list):
            return {"messages": parsed}
    return {"messages": [{"role": "user", "content": text_or_body}]}


def approx_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A tokenizer-free prompt size: about four characters per token."""
    chars = sum(
        len(content_text(m.get("content"))) for m in messages_of(body) if isinstance(m, Mapping)
    )
    return chars // 4 + 1


def route_body(
    body: Mapping[str, Any],
    *,
    weights: Weights,
    candidates: Sequence[Candidate],
    thresholds: Thresholds,
    mode: Mode = "auto-only",
    expected_output_tokens: int = DEFAULT_EXPECTED_OUTPUT_TOKENS,
    prompt_tokens: int | None = None,
) -> tuple[Score, Decision | None]:
    """Score a body and pick its model as for model "auto"; None when nothing can serve it."""
    score = score_features(extract(body), weights=weights)
    tokens = prompt_tokens if prompt_tokens is not None else approx_prompt_tokens(body)
    try:
        decision = select_model(
            score=score,
            candidates=candidates,
            needs=needs_of(body, prompt_tokens=tokens),
            thresholds=thresholds,
            mode=mode,
            requested=None,
            sticky=None,
            expected_output_tokens=expected_output_tokens,
        )
    except LookupError:
        return score, None
    return score, decision


def explain(
    text_or_body: str | Mapping[str, Any],
    *,
    weights: Weights,
    candidates: Sequence[Candidate],
    thresholds: Thresholds | None = None,
    expected_output_tokens: int = DEFAULT_EXPECTED_OUTPUT_TOKENS,
    prompt_tokens: int | None = None,
) -> str:
    """A few lines: the decision, the tier bounds, each feature's push, the fallbacks."""
    body = body_of(text_or_body)
    th = thresholds or weights.thresholds
    score, decision = route_body(
        body,
        weights=weights,
        candidates=candidates,
        thresholds=th,
        expected_output_tokens=expected_output_tokens,
        prompt_tokens=prompt_tokens,
    )
    features = extract(body)
    lines = [decision.reason if decision else f"score {score.value:.2f} -> no available model"]
    lines.append(
        f"tiers: small < {th.small_max:.2f} <= medium < {th.medium_max:.2f} <= large;"
        f" log-odds {logit_of(features, weights):+.2f}"
    )
    lines.append("features (value, push on log-odds vs a typical request):")
    for name, x, w, mean in zip(
        FEATURE_NAMES, features, weights.coefficients, weights.means, strict=True
    ):
        delta = w * (x - mean)
        if x or abs(delta) >= 0.01:
            lines.append(f"  {name:<14} {x:5.2f} {delta:+6.2f}")
    if score.reasons:
        lines.append("main reasons: " + ", ".join(score.reasons))
    if decision and decision.fallbacks:
        lines.append("fallbacks: " + ", ".join(c.name for c in decision.fallbacks))
    return "\n".join(lines)
