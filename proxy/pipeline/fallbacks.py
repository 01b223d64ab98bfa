"""Fallbacks of a request served as requested: its model's tier, and nothing that cannot serve it.

A request for a named model that routing does not replace (any embeddings or
Responses request; a chat request in ``auto-only`` or ``off`` mode) may still
fall back when its model keeps failing, but only to a model the operator put
in the same tier, and only to one that can answer the same endpoint:

* ``chat``: any provider; not an embedding model;
* ``responses``: a ``type: openai`` provider; not an embedding model; and
  with ``previous_response_id``, the same provider (the earlier response is
  stored there and nowhere else);
* ``embeddings``: a ``type: openai`` provider serving the same upstream model
  (vectors of different models are not comparable, so another model in the
  same tier would silently corrupt the client's index).

Other providers come first (an outage is usually a provider's), then the
cheaper model. ``x-spendgate-route: off`` asks for the named model alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from proxy.pipeline.exchange import Target


def can_serve(
    target: Target,
    requested: Target,
    *,
    endpoint: str,
    body: Mapping[str, Any],
    provider_types: Mapping[str, str],
    mode_of: Callable[[str], str | None],
) -> bool:
    """Whether ``target`` may answer a request for ``requested`` on ``endpoint``."""
    if endpoint == "embeddings":
        return (
            provider_types.get(target.provider) == "openai"
            and target.model.upstream_name == requested.model.upstream_name
        )
    if mode_of(target.model.name) == "embedding":
        return False
    if endpoint == "responses":
        if provider_types.get(target.provider) != "openai":
            return False
        if body.get("previous_response_id") is not None:
            return target.provider == requested.provider
    return True


def tier_fallbacks(
    requested: Target,
    targets: Sequence[Target],
    *,
    endpoint: str,
    body: Mapping[str, Any],
    provider_types: Mapping[str, str],
    mode_of: Callable[[str], str | None],
    price_of: Callable[[str], Decimal],
) -> tuple[Target, ...]:
    """The ordered fallbacks of ``requested`` (empty for a model without a tier)."""
    tier = requested.model.tier
    if tier is None:
        return ()
    pool = [
        t
        for t in targets
        if t.model.name != requested.model.name
        and t.model.tier == tier
        and can_serve(
            t,
            requested,
            endpoint=endpoint,
            body=body,
            provider_types=provider_types,
            mode_of=mode_of,
        )
    ]
    pool.sort(
        key=lambda t: (t.provider == requested.provider, price_of(t.model.name), t.model.name)
    )
    return tuple(pool)
