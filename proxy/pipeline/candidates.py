"""Configured models as routing sees them: limits, capabilities and prices.

A candidate joins a configured model with its catalog entry (context window,
output limit, tools, vision, JSON schema, reasoning) and its unit prices.
"""

from __future__ import annotations

from proxy.pipeline.accounting import Accountant
from proxy.pipeline.exchange import Target
from proxy.pipeline.models import ModelTable
from routing.select import Candidate


def candidate_for(target: Target, accountant: Accountant) -> Candidate:
    """A configured model as routing sees it: limits, capabilities, prices."""
    entry = accountant.entry_for(target.model.name)
    quote = accountant.quote(target.model.name, 0)
    caps = entry.capabilities if entry else None
    window = target.model.context_window or (entry.context_window if entry else 0) or 128_000
    max_output = target.model.max_output or (entry.max_output if entry else 0) or 16_384
    return Candidate(
        name=target.model.name,
        provider=target.provider,
        tier=target.model.tier or "large",
        context_window=window,
        max_output=max_output,
        # A model the catalog does not know is assumed able: the upstream will say if not.
        supports_tools=caps.tools if caps else True,
        supports_vision=caps.vision if caps else True,
        supports_json_schema=caps.json_schema if caps else True,
        supports_reasoning=caps.reasoning if caps else True,
        input_price=quote.prices.input,
        cached_input_price=quote.prices.cached_input,
        output_price=quote.prices.output,
    )


def build_candidates(models: ModelTable, accountant: Accountant) -> dict[str, Candidate]:
    return {t.model.name: candidate_for(t, accountant) for t in models.targets}
