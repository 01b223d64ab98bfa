"""The usage a call *would* have had on the requested (baseline) model.

Savings are measured against the model the client asked for. The served call's
usage is known; the baseline's is reconstructed with these rules:

* **Input** is the prompt counted with the baseline model's tokenizer (the
  caller supplies ``baseline_prompt_tokens``), because providers tokenise the
  same prompt differently.
* **Output** is the served call's ``completion_tokens``: the tokens actually
  returned, including any reasoning tokens the served model was billed for.
  What the baseline model would have generated is unknowable, so the observed
  count stands in for it. Reasoning tokens stay part of completion tokens and
  are never charged twice.
* **Prompt caching** carries over only when the baseline model would have had
  the same cache: the caller passes ``baseline_has_prompt_cache=True`` when the
  served and baseline models are from the same provider (same prompt-cache
  family). Then the served call's cached share and cache-write share of its
  prompt are applied proportionally to ``baseline_prompt_tokens`` (each
  rounded half to even, cached first, write capped at what is left).
  Otherwise the baseline pays full input price for its whole prompt: no cache
  read discount and no cache write.

When the served model *is* the requested model the caller should use the
served usage as the baseline unchanged, so a non-routed call saves exactly 0.
For a response served from Spendgate's own cache, pass the cached response's
usage as ``served`` (its cost is 0; the baseline is what the call would have
cost upstream).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from pricing.usage import Usage


def _share(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded half to even (0 when ``whole`` is 0)."""
    if whole <= 0 or part <= 0:
        return 0
    exact = Decimal(total) * Decimal(part) / Decimal(whole)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def baseline_usage(
    *,
    served: Usage,
    baseline_prompt_tokens: int,
    baseline_has_prompt_cache: bool,
) -> Usage:
    """Usage the baseline model would have had for the same request.

    See the module docstring for the rules. The result's ``source`` is
    ``"estimated"`` because its input side is a local token count.
    """
    if baseline_prompt_tokens < 0:
        raise ValueError("baseline_prompt_tokens must not be negative")
    cached = 0
    written = 0
    if baseline_has_prompt_cache:
        cached = min(
            baseline_prompt_tokens,
            _share(baseline_prompt_tokens, served.cached_prompt_tokens, served.prompt_tokens),
        )
        written = min(
            baseline_prompt_tokens - cached,
            _share(baseline_prompt_tokens, served.cache_creation_tokens, served.prompt_tokens),
        )
    return Usage(
        prompt_tokens=baseline_prompt_tokens,
        completion_tokens=served.completion_tokens,
        cached_prompt_tokens=cached,
        cache_creation_tokens=written,
        reasoning_tokens=served.reasoning_tokens,
        source="estimated",
    )
