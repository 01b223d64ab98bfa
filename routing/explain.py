"""Human-readable account of how one request would be scored and routed.

Backs ``spendgate route --explain FILE_OR_TEXT``: the caller reads the file
(if any) and passes its text, or passes a parsed chat body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from routing.features import content_text, messages_of
from routing.model import OperatingPoint
from routing.scorer import EXPLAINED_NEIGHBOURS, Scorer
from routing.select import Candidate, Decision, Mode, needs_of, select_model
from routing.tiers import Score, Thresholds

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
    scorer: Scorer,
    candidates: Sequence[Candidate],
    thresholds: Thresholds,
    mode: Mode = "auto-only",
    expected_output_tokens: int = DEFAULT_EXPECTED_OUTPUT_TOKENS,
    prompt_tokens: int | None = None,
) -> tuple[Score, Decision | None]:
    """Score a body and pick its model as for model "auto"; None when nothing can serve it."""
    score = scorer.score(body, thresholds=thresholds)
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


def describe_operating(point: OperatingPoint) -> str:
    """The quality target, its thresholds and what they did on validation prompts."""
    th, shares = point.thresholds, point.shares
    return (
        f"quality target {point.quality_target:.2f}: small < {th.small_max:.3f} <= medium < "
        f"{th.medium_max:.3f} <= large; on validation prompts: small {shares['small']:.0%}, "
        f"medium {shares['medium']:.0%}, large {shares['large']:.0%}, quality kept "
        f"{point.quality_kept:.1%}, cost {point.relative_cost:.0%} of all-large"
    )


def explain(
    text_or_body: str | Mapping[str, Any],
    *,
    scorer: Scorer,
    candidates: Sequence[Candidate],
    quality_target: float,
    expected_output_tokens: int = DEFAULT_EXPECTED_OUTPUT_TOKENS,
    prompt_tokens: int | None = None,
) -> str:
    """A few lines: the decision, the knob and its tiers, what drove the score, the fallbacks."""
    body = body_of(text_or_body)
    point = scorer.model.operating(quality_target)
    score, decision = route_body(
        body,
        scorer=scorer,
        candidates=candidates,
        thresholds=point.thresholds,
        expected_output_tokens=expected_output_tokens,
        prompt_tokens=prompt_tokens,
    )
    parts = scorer.breakdown(body, neighbours=EXPLAINED_NEIGHBOURS)
    lines = [decision.reason if decision else f"score {score.value:.2f} -> no available model"]
    lines.append(describe_operating(point))
    lines.append(f"log-odds {parts.logit:+.2f}: content {parts.content_logit:+.2f}")
    for name, value, push in parts.pushes:
        if value or abs(push) >= 0.01:
            lines.append(f"  {name:<14} {value:5.2f} {push:+6.2f}")
    lines.append("nearest training prompts (cosine, outcome):")
    for n in parts.neighbours:
        e = n.exemplar
        lines.append(f'  {n.similarity:.2f}  {e.source}: "{e.text}" ({e.label})')
    if decision and decision.fallbacks:
        lines.append("fallbacks: " + ", ".join(c.name for c in decision.fallbacks))
    return "\n".join(lines)
