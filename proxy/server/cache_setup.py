"""The cache stage as the settings describe it: store, semantic index, per-tenant switches.

Redis clients here fail fast (no retries, short timeouts) and sit behind a
circuit breaker, so a slow or dead Redis costs a lookup its time budget, never
a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
from cache.semantic.wordllama import WORDLLAMA
from cache.service import ResponseCache
from cache.store import CacheStore
from proxy.pipeline.cache_stage import CacheControls, CacheStageImpl
from proxy.pipeline.embeddings import EmbeddingsClient
from proxy.pipeline.metrics import Metrics
from proxy.pipeline.redis_keys import redis_keys
from proxy.settings import Settings
from routing.breaker import BreakerPolicy, CircuitBreaker

if TYPE_CHECKING:  # numpy, tokenizers and safetensors load with the model only
    from routing.embedding import TextEmbedder

# A dead Redis is retried after a few seconds, not the routing breakers' 30.
REDIS_BREAKER = BreakerPolicy(failure_threshold=3, open_s=5.0)


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


def replay(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
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
