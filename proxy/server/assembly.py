"""Builds the pipeline's stages from the settings (the composition root)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cache.assemble import ChunkAssembler
from cache.crypto import encryptor_from_secret
from cache.memory import MemoryStore
from cache.redis_store import RedisStore
from cache.replay import replay_chunks
from cache.semantic import (
    MemoryIndex,
    RedisIndex,
    SemanticCache,
    SemanticIndex,
    build_embedder,
)
from cache.semantic.embedders import load_text_embedder
from cache.semantic.wordllama import WORDLLAMA
from cache.service import ResponseCache
from cache.store import CacheStore
from pricing.catalog import Catalog, PriceOverride, load_catalog
from pricing.ledger import LedgerStore, LedgerWriter, load_keys, open_ledger
from pricing.ledger.backend import StoreBackend, WriteBackend
from pricing.ledger.spill import RejectFile
from pricing.tokens import TokenCounter
from proxy.errors import SpendgateError
from proxy.ops.access_log import log_lines
from proxy.pipeline.accounting import Accountant
from proxy.pipeline.cache_stage import CacheControls, CacheStageImpl
from proxy.pipeline.embeddings import EmbeddingsClient
from proxy.pipeline.forward import Forwarder
from proxy.pipeline.ledger_sink import LedgerSink, SpillSlot, default_spill_base
from proxy.pipeline.metrics import CounterSync, Metrics
from proxy.pipeline.models import ModelTable
from proxy.pipeline.redis_keys import redis_keys
from proxy.pipeline.routing_stage import Router
from proxy.server.ledger_process import ProcessBackend
from proxy.server.ledger_worker import WorkerOptions
from proxy.settings import Settings
from routing.breaker import BreakerPolicy, CircuitBreaker

if TYPE_CHECKING:  # numpy, tokenizers and safetensors load with the model only
    from routing.embedding import TextEmbedder
    from routing.scorer import Scorer

log = logging.getLogger("spendgate")

Probe = Callable[[], Awaitable[dict[str, Any]]]
Closer = Callable[[], Awaitable[None]]

# A dead Redis is retried after a few seconds, not the routing breakers' 30.
REDIS_BREAKER = BreakerPolicy(failure_threshold=3, open_s=5.0)


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


def redis_client(url: str, *, timeout_s: float) -> Redis:
    """A client that fails fast: no retries eating the lookup's time budget."""
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return client


def _replay(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    return list(replay_chunks(completion, include_usage=include_usage))


def build_cache(
    settings: Settings, *, metrics: Metrics, redis: Redis | None, semantic: SemanticCache | None
) -> CacheStageImpl:
    config = settings.config
    cache_config = config.cache
    store: CacheStore
    if redis is not None:
        store = RedisStore(
            redis,
            prefix=redis_keys(cache_config).cache,
            ttl_s=cache_config.ttl_s,
            op_timeout_s=cache_config.lookup_timeout_ms / 1000,
            breaker=CircuitBreaker(REDIS_BREAKER),
        )
    else:
        store = MemoryStore(cache_config.max_bytes, ttl_s=cache_config.ttl_s)
    cache = ResponseCache(
        store,
        ttl_s=cache_config.ttl_s,
        cache_length=cache_config.cache_length,
        encryptor=encryptor_from_secret(cache_config.encryption_key),
    )
    tenants = config.tenants

    def enabled(tenant: str) -> bool:
        override = tenants.get(tenant)
        if override is not None and override.cache_enabled is not None:
            return override.cache_enabled
        return cache_config.enabled

    def namespace(tenant: str) -> str:
        override = tenants.get(tenant)
        return (
            override.cache_namespace
            if override and override.cache_namespace
            else f"tenant:{tenant}"
        )

    def threshold(tenant: str) -> float | None:
        override = tenants.get(tenant)
        if override is not None and override.semantic_threshold is not None:
            return override.semantic_threshold
        return cache_config.semantic.threshold

    controls = CacheControls(enabled=enabled, namespace=namespace, threshold=threshold)
    return CacheStageImpl(cache, controls=controls, metrics=metrics, semantic=semantic)


def semantic_uses_text_embedder(settings: Settings) -> bool:
    """Whether the semantic cache is on and embeds with the shared ``wordllama`` model."""
    semantic = settings.config.cache.semantic
    return semantic.enabled and semantic.embedder == WORDLLAMA


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


def build_semantic(
    settings: Settings,
    *,
    redis: Redis | None,
    embeddings: EmbeddingsClient,
    text_embedder: TextEmbedder | None = None,
) -> SemanticCache | None:
    """The semantic cache, or None when it is off; ``wordllama`` uses ``text_embedder``."""
    semantic = settings.config.cache.semantic
    if not semantic.enabled:
        return None
    cache_config = settings.config.cache
    embedder = build_embedder(
        semantic.embedder,
        embed_call=embeddings.embed,
        cost_of=embeddings.cost_of,
        provider_dim=semantic.dim,
        text_embedder=text_embedder,
    )
    index: SemanticIndex
    if redis is not None:
        index = RedisIndex(
            redis,
            prefix=redis_keys(cache_config).semantic,
            ttl_s=cache_config.ttl_s,
            max_per_context=semantic.max_per_context,
            op_timeout_s=cache_config.lookup_timeout_ms / 1000,
            breaker=CircuitBreaker(REDIS_BREAKER),
        )
    else:
        index = MemoryIndex(semantic.max_entries, ttl_s=cache_config.ttl_s)
    return SemanticCache(embedder, index, threshold=semantic.threshold)


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
        replay=_replay,
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
    await _attach_ledger(settings, stages, accountant=accountant, metrics=metrics)
    return stages


async def _attach_ledger(
    settings: Settings, stages: Stages, *, accountant: Accountant, metrics: Metrics
) -> None:
    """Open the ledger, start its writer, load stored keys. A ledger that is down
    at start-up does not stop the proxy: rows spill to disk until it answers."""
    ledger = settings.config.ledger
    try:
        store = await asyncio.to_thread(open_ledger, ledger.url)
    except SpendgateError as exc:
        log.warning(
            "ledger unavailable at start-up (%s): rows will spill until it answers", exc.code
        )
        store = await asyncio.to_thread(open_ledger, ledger.url, create=False)
    slot = SpillSlot(default_spill_base(ledger.url, ledger.spill_path))
    backend = await _ledger_backend(settings, store, rejects=RejectFile.beside(slot.path))
    writer = LedgerWriter(backend, spill_path=slot.path, max_pending=ledger.max_pending)
    writer.start()
    server = settings.config.server
    accountant.add_sink(
        LedgerSink(writer, access_log=server.access_log, log_content=server.log_content)
    )
    try:
        stages.stored_keys = await asyncio.to_thread(load_keys, store)
    except SpendgateError:
        log.warning("could not load stored proxy keys from the ledger")

    async def close() -> None:
        await writer.close()
        await asyncio.to_thread(store.close)
        slot.release()

    stages.closers.append(close)
    stages.probes["ledger"] = _ledger_probe(store, writer)
    stages.gauges.append(_ledger_gauges(writer, metrics))
    stages.ledger = store


def _ledger_probe(store: LedgerStore, writer: LedgerWriter) -> Probe:
    async def probe() -> dict[str, Any]:
        try:
            await asyncio.wait_for(asyncio.to_thread(store.chain_heads, tenant="-"), 2.0)
            up = True
        except (SpendgateError, TimeoutError):
            up = False
        # Not critical: rows spill to disk while the database is away.
        return {
            "ok": up,
            "critical": False,
            "backlog": writer.backlog,
            "spill_pending": writer.spill_pending,
        }

    return probe


def _ledger_gauges(writer: LedgerWriter, metrics: Metrics) -> Callable[[], None]:
    spilled = CounterSync(metrics.ledger_spilled_total)

    def gauges() -> None:
        metrics.ledger_backlog.set(writer.backlog)
        metrics.ledger_spilled.set(writer.spill_pending)
        spilled.to(writer.spilled_total)

    return gauges


async def _ledger_backend(
    settings: Settings, store: LedgerStore, *, rejects: RejectFile
) -> WriteBackend:
    """The writer process; a worker thread only for an in-memory ledger, which no
    other process can see."""
    url = settings.config.ledger.url
    if url == "sqlite:///:memory:":
        return StoreBackend(store, rejects=rejects, on_notes=log_lines)
    options = WorkerOptions(
        url=url, rejected_path=str(rejects.path), access_log=settings.config.server.access_log
    )
    backend = ProcessBackend(options)
    await backend.start()
    return backend


def _circuit_gauges(router: Router, metrics: Metrics) -> None:
    for target, state in router.circuit_states().items():
        metrics.circuit_state.labels(target).set(0 if state == "closed" else 1)
