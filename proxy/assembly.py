"""Builds the pipeline's stages from the settings (the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pricing.catalog import Catalog, PriceOverride, load_catalog
from pricing.tokens import TokenCounter
from proxy.forward import Forwarder
from proxy.metrics import Metrics
from proxy.models import ModelTable
from proxy.settings import Settings
from proxy.stages import AccountingStage, CacheStage, RouterStage

Probe = Callable[[], Awaitable[dict[str, Any]]]
Closer = Callable[[], Awaitable[None]]


@dataclass
class Stages:
    router: RouterStage
    cache: CacheStage
    accounting: AccountingStage
    replay: Callable[[dict[str, Any], bool], list[dict[str, Any]]]
    assembler: Callable[[], Any]
    stored_keys: list[tuple[str, str, str]] = field(default_factory=list)
    probes: dict[str, Probe] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)
    gauges: list[Callable[[], None]] = field(default_factory=list)


async def build_stages(
    settings: Settings, *, models: ModelTable, metrics: Metrics, forwarder: Forwarder
) -> Stages:
    from proxy.accounting import Accountant
    from proxy.cache_stage import NoCache, NullAssembler, no_replay
    from proxy.routing_stage import Router

    catalog = build_catalog(settings)
    counter = TokenCounter(settings.tiktoken_dir)
    threading.Thread(target=counter.warm, name="tiktoken-warm", daemon=True).start()
    accountant = Accountant(settings, catalog=catalog, counter=counter, models=models, metrics=metrics)
    router = Router(settings, models=models, metrics=metrics)
    return Stages(
        router=router,
        cache=NoCache(),
        accounting=accountant,
        replay=no_replay,
        assembler=NullAssembler,
    )


def build_catalog(settings: Settings) -> Catalog:
    """The package catalog, then the import override file, then ``models[].price``."""
    config = settings.config
    overrides = Path(config.pricing.overrides_file) if config.pricing.overrides_file else None
    catalog = load_catalog(overrides_path=overrides)
    prices = {
        model.upstream_name: PriceOverride(
            input=model.price.input,
            output=model.price.output,
            cached_input=model.price.cached_input,
            cache_write=model.price.cache_write,
        )
        for model in config.models
        if model.price is not None
    }
    return catalog.with_prices(prices) if prices else catalog
