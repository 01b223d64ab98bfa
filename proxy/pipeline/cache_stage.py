"""The cache stage: exact lookup, then semantic, then coalescing of misses.

A miss that may be stored joins a *flight*: identical requests in flight
together make one upstream call, and every follower gets the leader's answer.
The leader's flight stays open until its answer is complete (for a stream,
until the last chunk), then ``finish`` publishes it and closes the flight.
``finish`` is always reached: a failed or abandoned request closes its flight
with no answer, and one of its followers takes over as the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from cache.policy import CacheMode, cache_mode
from cache.semantic import SemanticCache
from cache.service import ResponseCache
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.metrics import CounterSync, Metrics

log = logging.getLogger("spendgate")


class CacheControls:
    """Per-tenant cache switches: enabled, namespace, semantic threshold."""

    def __init__(
        self,
        *,
        enabled: Callable[[str], bool],
        namespace: Callable[[str], str],
        threshold: Callable[[str], float | None],
    ) -> None:
        self.enabled = enabled
        self.namespace = namespace
        self.threshold = threshold


class CacheStageImpl:
    def __init__(
        self,
        cache: ResponseCache,
        *,
        controls: CacheControls,
        metrics: Metrics,
        semantic: SemanticCache | None = None,
    ) -> None:
        self._cache = cache
        self._controls = controls
        self._metrics = metrics
        self._semantic = semantic
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors = CounterSync(metrics.cache_errors)

    def _mode(self, ex: Exchange) -> CacheMode:
        return cache_mode(ex.headers, enabled=self._controls.enabled(ex.tenant))

    def _scope(self, ex: Exchange) -> tuple[str, str]:
        return self._controls.namespace(ex.tenant), ex.requested_model

    async def lookup(self, ex: Exchange) -> dict[str, Any] | None:
        mode = self._mode(ex)
        ex.cache_mode = mode
        if not mode.lookup and not mode.store:
            ex.cache_status = "bypass"
            return None
        namespace, model = self._scope(ex)
        ex.cache_key = self._cache.key(ex.body, namespace=namespace, model=model)
        if not mode.lookup:
            return None
        self._metrics.cache_lookups.labels("exact").inc()
        hit = await self._cache.lookup(ex.body, namespace=namespace, model=model, key=ex.cache_key)
        if hit is not None:
            ex.cache_status = "exact"
            ex.cached_body = hit.body
            self._metrics.cache_hits.labels("exact").inc()
            return hit.completion
        return await self._semantic_lookup(ex, namespace, model)

    async def _semantic_lookup(
        self, ex: Exchange, namespace: str, model: str
    ) -> dict[str, Any] | None:
        if self._semantic is None:
            return None
        self._metrics.cache_lookups.labels("semantic").inc()
        probe = await self._semantic.probe(
            ex.body, namespace=namespace, model=model, threshold=self._controls.threshold(ex.tenant)
        )
        ex.overhead_micro += probe.overhead_micro  # the embedding is paid, hit or miss
        ex.semantic_probe = probe
        match = probe.match
        if match is None:
            return None
        hit = await self._cache.lookup(
            ex.body, namespace=namespace, model=model, key=match.exact_key
        )
        if hit is None:
            return None
        ex.cache_status = "semantic"
        ex.cached_body = hit.body
        ex.cache_similarity = float(match.similarity)
        self._metrics.cache_hits.labels("semantic").inc()
        return hit.completion

    async def join(self, ex: Exchange) -> dict[str, Any] | None:
        """Enter the request's flight; a follower gets the leader's answer."""
        mode = ex.cache_mode
        if ex.cache_key is None or mode is None or not mode.store:
            return None
        namespace, model = self._scope(ex)
        stack = contextlib.AsyncExitStack()
        flight = await stack.enter_async_context(
            self._cache.flight(
                ex.body, namespace=namespace, model=model, mode=mode, key=ex.cache_key
            )
        )
        if flight.answer is not None:
            await stack.aclose()
            ex.cache_status = "exact"
            self._metrics.cache_hits.labels("coalesced").inc()
            return dict(flight.answer)
        ex.flight = (stack, flight)
        return None

    async def store(self, ex: Exchange, completion: dict[str, Any] | None) -> None:
        """Publish the leader's answer (None when it failed), then close the flight."""
        if ex.flight is None:
            return
        stack, flight = ex.flight
        ex.flight = None
        try:
            if completion is not None and await flight.publish(completion):
                await self._index(ex, completion)
        except Exception:  # the cache must never fail a request that was answered
            log.exception("cache store failed for %s", ex.request_id)
        finally:
            await stack.aclose()

    def store_later(self, ex: Exchange, completion: dict[str, Any] | None) -> None:
        """``store`` from code that may not await (a stream's cancelled task)."""
        if ex.flight is None:
            return
        task = asyncio.get_running_loop().create_task(self.store(ex, completion))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _index(self, ex: Exchange, completion: dict[str, Any]) -> None:
        if self._semantic is None or ex.cache_key is None:
            return
        namespace, model = self._scope(ex)
        await self._semantic.add(
            ex.body,
            namespace=namespace,
            model=model,
            exact_key=ex.cache_key,
            probe=ex.semantic_probe,
        )

    def count_errors(self) -> None:
        """Export the backend's errors and timeouts (a gauge refresh calls this)."""
        stats = self._cache.metrics()
        self._errors.to(stats["store_errors"] + stats["store_timeouts"])

    async def probe(self) -> dict[str, Any]:
        """Readiness detail. The cache is not critical: without it requests go uncached."""
        up = await self._cache.backend.ping()
        health = self._cache.health()
        self._metrics.redis_up.set(1 if up else 0)
        return {"ok": up, "critical": False, "backend": health.backend, "breaker": health.breaker}

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
