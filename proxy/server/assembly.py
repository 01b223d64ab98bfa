"""Builds the pipeline's stages from the settings (the composition root).

The cache (``cache_setup``) and the ledger with its writer (``ledger_setup``)
are built by modules of their own; this one decides what is loaded at all
(tokenizers, the text embedding, the router's scorer) and wires the stages.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from cache.assemble import ChunkAssembler
from cache.semantic.embedders import load_text_embedder
from pricing.catalog import Catalog, PriceOverride, load_catalog
from pricing.ledger import LedgerStore
from pricing.tokens import TokenCounter
from proxy.pipeline.accounting import Accountant
from proxy.pipeline.cache_stage import CacheStageImpl
from proxy.pipeline.embeddings import EmbeddingsClient
from proxy.pipeline.forward import Forwarder
from proxy.pipeline.metrics import Metrics
from proxy.pipeline.models import ModelTable
from proxy.pipeline.routing_stage import Router
from proxy.server.cache_setup import (
    build_cache,
    build_semantic,
    redis_client,
    replay,
    semantic_uses_text_embedder,
)
from proxy.server.hooks import Closer, Probe
from proxy.server.ledger_setup import start_ledger
from proxy.settings import Settings

if TYPE_CHECKING:  # numpy, tokenizers and safetensors load with the model only
    from routing.embedding import TextEmbedder
    from routing.scorer import Scorer

log = logging.getLogger("spendgate")


@dataclass
class Stages:
    router: Router
    cache: CacheStageImpl
    accounting: Accountant
    replay: Callable[[dict[str, Any], bool], list[dict[str, Any]]]
    assembler: Callable[[], Any]
    stored_keys: list[tuple[str, str, str]] = field(default_factory=list)
    probes: dict[str, Probe] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)
    gauges: list[Callable[[], None]] = field(default_factory=list)
    ledger: LedgerStore | None = None
    redis: Redis | None = None


def build_catalog(settings: Settings) -> Catalog:
    """The package catalog, then the import override file, then ``models[].price``."""
    config = settings.config
    catalog = load_catalog(overrides_path=Path(config.pricing.overrides_file))
    prices = {
        _priced_name(catalog, model.name, model.upstream_name): PriceOverride(
            input=model.price.input,
            output=model.price.output,
            cached_input=model.price.cached_input,
            cache_write=model.price.cache_write,
        )
        for model in config.models
        if model.price is not None
    }
    return catalog.with_prices(prices) if prices else catalog


def _priced_name(catalog: Catalog, name: str, upstream: str) -> str:
    """The catalog name a configured price replaces: the upstream model's, unless only the
    configured name is known (its limits and capabilities then stay with the price)."""
    if catalog.get(upstream) is None and catalog.get(name) is not None:
        return name
    return upstream


def counts_from_the_start(settings: Settings) -> bool:
    """Whether prompts are counted on most requests (downgrade routing, budgets).

    Only then are the tokenizers loaded at start-up: each holds tens of MiB.
    Otherwise one loads, in the background, the first time a count is wanted
    (a request for ``auto``, a baseline on another model), and that request
    gets an estimate.
    """
    return "downgrade" in routing_modes(settings) or bool(settings.config.budgets)


def routing_modes(settings: Settings) -> set[str]:
    """The routing modes in force: ``routing.mode`` and any tenant's or key's own."""
    config = settings.config
    modes: set[str] = {config.routing.mode}
    modes |= {t.routing_mode for t in config.tenants.values() if t.routing_mode}
    if config.auth is not None:
        modes |= {k.routing_mode for k in config.auth.keys if k.routing_mode}
    return modes


async def shared_text_embedder(
    settings: Settings, *, for_routing: bool = False
) -> TextEmbedder | None:
    """The process's one text embedding model, loaded only when something uses it.

    The semantic cache's need is read from the settings; ``for_routing`` is
    the router's. The model and its libraries take about 65 MiB
    (``bench.semcache_memory``), so a proxy that uses neither never loads
    them. ``ConfigError`` when the model's files are missing.
    """
    if not (for_routing or semantic_uses_text_embedder(settings)):
        return None
    return await asyncio.to_thread(load_text_embedder)


def routes_requests(settings: Settings) -> bool:
    """Whether routing is on: some model has a tier and some mode in force is not ``off``."""
    tiered = any(model.tier for model in settings.config.models)
    return tiered and routing_modes(settings) != {"off"}


async def build_scorer(settings: Settings, embedder: TextEmbedder | None) -> Scorer | None:
    """The router's scorer when requests can be routed."""
    if embedder is None or not routes_requests(settings):
        return None
    from routing.model import load_model
    from routing.scorer import Scorer

    return Scorer(await asyncio.to_thread(load_model), embedder)


async def build_stages(
    settings: Settings, *, models: ModelTable, metrics: Metrics, forwarder: Forwarder
) -> Stages:
    config = settings.config
    catalog = build_catalog(settings)
    counter = TokenCounter(settings.tiktoken_dir)
    accountant = Accountant(
        settings, catalog=catalog, counter=counter, models=models, metrics=metrics
    )
    if counts_from_the_start(settings):
        threading.Thread(
            target=counter.warm,
            args=(accountant.encodings_in_use(),),
            name="tiktoken-warm",
            daemon=True,
        ).start()
    text_embedder = await shared_text_embedder(settings, for_routing=routes_requests(settings))
    redis = state_redis = None
    if config.cache.backend == "redis":
        redis = redis_client(
            config.cache.redis_url, timeout_s=config.cache.lookup_timeout_ms / 1000
        )
        state_redis = redis_client(
            config.cache.redis_url, timeout_s=config.routing.state_timeout_ms / 1000
        )
    router = Router(
        settings,
        models=models,
        metrics=metrics,
        accountant=accountant,
        scorer=await build_scorer(settings, text_embedder),
        redis=state_redis,
    )
    accountant.add_sink(router.settle)
    embeddings = EmbeddingsClient(forwarder, models=models, accountant=accountant)
    semantic = build_semantic(
        settings, redis=redis, embeddings=embeddings, text_embedder=text_embedder
    )
    cache = build_cache(settings, metrics=metrics, redis=redis, semantic=semantic)
    stages = Stages(
        router=router,
        cache=cache,
        accounting=accountant,
        replay=replay,
        assembler=ChunkAssembler,
        redis=state_redis,
    )
    stages.closers.append(router.aclose)
    stages.closers.append(cache.aclose)
    for client in (redis, state_redis):
        if client is not None:
            stages.closers.append(client.aclose)
    stages.probes["cache"] = cache.probe
    stages.probes["circuits"] = router.probe
    stages.gauges.append(lambda: _circuit_gauges(router, metrics))
    stages.gauges.append(cache.count_errors)
    ledger = await start_ledger(settings, accountant=accountant, metrics=metrics)
    stages.ledger = ledger.store
    stages.stored_keys = ledger.stored_keys
    stages.closers.append(ledger.close)
    stages.probes["ledger"] = ledger.probe
    stages.gauges.append(ledger.gauges)
    return stages


def _circuit_gauges(router: Router, metrics: Metrics) -> None:
    for target, state in router.circuit_states().items():
        metrics.circuit_state.labels(target).set(0 if state == "closed" else 1)
