"""The routing stage: resolve the model, choose a target, retry and fall back."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from proxy.errors import SpendgateError, is_retryable
from proxy.exchange import Attempt, Exchange, Target
from proxy.metrics import Metrics
from proxy.models import AUTO_MODEL, ModelTable
from proxy.settings import Settings

T = TypeVar("T")


class Router:
    def __init__(self, settings: Settings, *, models: ModelTable, metrics: Metrics) -> None:
        self._settings = settings
        self._models = models
        self._metrics = metrics
        self._rng = random.Random()

    def resolve(self, ex: Exchange) -> None:
        if ex.requested_model == AUTO_MODEL:
            if not any(t.model.tier for t in self._models.targets):
                raise self._models.not_found(AUTO_MODEL)
            return
        ex.target = self._models.resolve(ex.requested_model)

    async def plan(self, ex: Exchange) -> None:
        if ex.target is None:
            tiered = [t for t in self._models.targets if t.model.tier]
            order = {"small": 0, "medium": 1, "large": 2}
            tiered.sort(key=lambda t: order.get(t.model.tier or "large", 2))
            ex.target, ex.fallbacks = tiered[0], tuple(tiered[1:])
            ex.route_reason = f"auto -> {ex.target.model.tier}: {ex.target.model.name}"

    async def run(self, ex: Exchange, attempt: Callable[[Target], Awaitable[T]]) -> T:
        assert ex.target is not None
        routing = self._settings.config.routing
        plan = [ex.target, *ex.fallbacks]
        deadline = time.monotonic() + routing.deadline_s
        last: BaseException | None = None
        tries = 0
        for target in plan:
            for retry in range(routing.max_attempts):
                if tries >= routing.max_attempts or time.monotonic() >= deadline:
                    break
                tries += 1
                started = time.perf_counter()
                try:
                    result = await attempt(target)
                except SpendgateError as exc:
                    ex.attempts.append(_attempt(target, exc, started))
                    last = exc
                    if not is_retryable(exc):
                        raise
                    if retry + 1 < routing.max_attempts:
                        await asyncio.sleep(self._backoff(retry))
                    continue
                ex.attempts.append(_attempt(target, None, started))
                ex.target = target
                return result
        assert last is not None
        raise last

    def _backoff(self, retry: int) -> float:
        routing = self._settings.config.routing
        return min(routing.retry_cap_s, routing.retry_base_s * 2**retry) * self._rng.random()


def _attempt(target: Target, exc: SpendgateError | None, started: float) -> Attempt:
    ms = int((time.perf_counter() - started) * 1000)
    if exc is None:
        return Attempt(target.model.name, target.provider, "ok", 200, ms)
    return Attempt(target.model.name, target.provider, exc.type, exc.http_status, ms)
