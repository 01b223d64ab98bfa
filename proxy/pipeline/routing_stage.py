"""The routing stage: resolve the model, choose a target within budgets, retry and fall back.

The decisions themselves are pure functions in ``routing``; this module feeds
them the request, the configured models (``candidates``: catalog limits and
prices) and the live state: circuit breakers, conversation stickiness and the
budget counters (``budget_gate``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio import Redis

from proxy.config import RoutingMode
from proxy.errors import RequestError, UpstreamConnectionError, UpstreamTimeoutError
from proxy.pipeline.accounting import Accountant
from proxy.pipeline.budget_gate import DEFAULT_EXPECTED_OUTPUT_TOKENS, BudgetGate
from proxy.pipeline.candidates import build_candidates
from proxy.pipeline.exchange import Exchange, Target
from proxy.pipeline.fallbacks import tier_fallbacks
from proxy.pipeline.metrics import Metrics
from proxy.pipeline.models import AUTO_MODEL, ModelTable
from proxy.pipeline.redis_keys import redis_keys
from proxy.settings import Settings
from routing.breaker import BreakerPolicy, BreakerRegistry, breaker_key
from routing.budgets import BudgetUsage
from routing.retry import RetryPolicy, attempts_of, run_with_fallbacks
from routing.select import (
    Candidate,
    StickinessTracker,
    needs_of,
    select_model,
    why_not,
    with_availability,
)
from routing.tiers import Score

if TYPE_CHECKING:  # the scorer's libraries load with the model only
    from routing.scorer import Scorer

log = logging.getLogger("spendgate")
T = TypeVar("T")

_ROUTE_HEADER = "x-spendgate-route"


class Router:
    def __init__(
        self,
        settings: Settings,
        *,
        models: ModelTable,
        metrics: Metrics,
        accountant: Accountant,
        scorer: Scorer | None,
        redis: Redis | None = None,
    ) -> None:
        config = settings.config
        routing = config.routing
        self._settings = settings
        self._models = models
        self._metrics = metrics
        self._accountant = accountant
        self._scorer = scorer
        self._thresholds = (
            scorer.model.operating(routing.quality_target).thresholds if scorer else None
        )
        self._candidates = build_candidates(models, accountant)
        keys = redis_keys(config.cache)
        # Only models with a tier are ever chosen by routing (an embedding model is not).
        self._routable = [self._candidates[t.model.name] for t in models.targets if t.model.tier]
        self._tier_sizes = Counter(t.model.tier for t in models.targets if t.model.tier)
        self._breakers = BreakerRegistry(
            BreakerPolicy(
                failure_threshold=routing.breaker_failures, open_s=routing.breaker_open_s
            ),
            redis=redis,
            key_prefix=keys.breakers,
        )
        self._sticky = StickinessTracker(redis=redis, key_prefix=keys.sticky)
        self._budgets = BudgetGate(
            settings,
            models=models,
            accountant=accountant,
            candidates=self._candidates,
            redis=redis,
            key_prefix=keys.budgets,
        )
        self._unpriced = self._budgets.unpriced
        self._policy = RetryPolicy(
            max_attempts=routing.max_attempts,
            base_s=routing.retry_base_s,
            cap_s=routing.retry_cap_s,
            deadline_s=routing.deadline_s,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._provider_types = {name: p.type for name, p in config.providers.items()}
        self._rng = random.Random()

    def resolve(self, ex: Exchange) -> None:
        if ex.requested_model == AUTO_MODEL:
            if ex.endpoint != "chat":
                raise RequestError(
                    f"model 'auto' is routed on /v1/chat/completions only; name a model "
                    f"for /v1/{ex.endpoint}",
                    param="model",
                )
            if not any(t.model.tier for t in self._models.targets):
                raise self._models.not_found(AUTO_MODEL)
            if self._scorer is None:
                raise RequestError(
                    "model 'auto' needs routing, and routing.mode is off", param="model"
                )
            return
        ex.target = self._models.resolve(ex.requested_model)

    def target_for(self, model: str) -> Target | None:
        target = self._models.get(model)
        if target is not None:
            return target
        return next((t for t in self._models.targets if t.model.upstream_name == model), None)

    def _mode(self, ex: Exchange) -> RoutingMode:
        principal = ex.principal
        if principal is not None and principal.routing_mode:
            return principal.routing_mode
        tenant = self._settings.config.tenants.get(ex.tenant)
        if tenant is not None and tenant.routing_mode:
            return tenant.routing_mode
        return self._settings.config.routing.mode

    async def plan(self, ex: Exchange) -> None:
        """Choose the target and fallbacks, then reserve the estimate against budgets."""
        requested = ex.target
        mode = self._mode(ex)
        off = ex.headers.get(_ROUTE_HEADER) == "off"
        if requested is not None and (
            off or ex.endpoint != "chat" or mode != "downgrade" or requested.model.tier is None
        ):
            why = "x-spendgate-route: off" if off else f"mode {mode}"
            if ex.endpoint != "chat" and not off:
                why = f"/v1/{ex.endpoint}"
            ex.route_reason = f"{why}: {requested.model.name} as requested"
            if not off:
                ex.fallbacks = self._tier_fallbacks(ex, requested)
        else:
            await self._choose(ex, requested, mode)
        await self._budgets.reserve(ex)

    def _tier_fallbacks(self, ex: Exchange, requested: Target) -> tuple[Target, ...]:
        tier = requested.model.tier
        if tier is None or self._tier_sizes[tier] < 2:
            return ()  # alone in its tier (or in none): nothing to fall back to, nothing to sort

        def mode_of(name: str) -> str | None:
            entry = self._accountant.entry_for(name)
            return entry.mode if entry is not None else None

        def price_of(name: str) -> Decimal:
            candidate = self._candidates[name]
            return candidate.input_price + candidate.output_price

        return tier_fallbacks(
            requested, self._models.targets, endpoint=ex.endpoint, body=ex.body,
            provider_types=self._provider_types, mode_of=mode_of, price_of=price_of,
        )  # fmt: skip

    async def _choose(self, ex: Exchange, requested: Target | None, mode: RoutingMode) -> None:
        prompt_tokens, _ = self._accountant.prompt_tokens(
            ex, self._accountant.baseline_model(ex) or ""
        )
        ex.estimated_prompt_tokens = prompt_tokens
        if self._scorer is None or self._thresholds is None:
            raise RuntimeError("routing needs a scorer: no configured model has a tier")
        thresholds = self._thresholds
        score: Score = self._scorer.score(ex.body, thresholds=thresholds)
        needs = needs_of(ex.body, prompt_tokens=prompt_tokens)
        messages = ex.body.get("messages") or []
        sticky = await self._sticky.lookup(ex.tenant, messages)
        pool = self._routable
        if self._unpriced and self._budgets.metered(ex):
            pool = [c for c in pool if c.name not in self._unpriced]
        candidates = with_availability(
            pool,
            available=lambda c: self._breakers.available(breaker_key(c.provider, c.name)),
        )
        try:
            decision = select_model(
                score=score,
                candidates=candidates,
                needs=needs,
                thresholds=thresholds,
                mode=mode,
                requested=self._candidates[requested.model.name] if requested else None,
                sticky=sticky,
                expected_output_tokens=needs.max_tokens or DEFAULT_EXPECTED_OUTPUT_TOKENS,
            )
        except LookupError as exc:
            least = thresholds.tier(score.value)
            raise self._no_model(candidates, needs, least) from exc
        ex.target = self._models.resolve(decision.model.name)
        ex.fallbacks = tuple(self._models.resolve(c.name) for c in decision.fallbacks)
        ex.route_reason = decision.reason
        ex.route_tier = decision.tier
        self._metrics.routes.labels(decision.tier).inc()

    @staticmethod
    def _no_model(candidates: Sequence[Candidate], needs: Any, least: str) -> Exception:
        order = ("small", "medium", "large")
        eligible = [c for c in candidates if order.index(c.tier) >= order.index(least)]
        reasons = {why_not(c, needs) for c in eligible}
        if eligible and reasons == {"circuit open"}:
            return UpstreamConnectionError(
                "every model that could serve this request is unavailable (circuits open)",
                provider="spendgate",
            )
        if not eligible:
            detail = f"it needs tier {least} or above and no such model is configured"
        else:
            detail = "; ".join(sorted(f"{c.name}: {why_not(c, needs)}" for c in eligible))
        return RequestError(f"no configured model can serve this request: {detail}", param="model")

    async def run(self, ex: Exchange, attempt: Callable[[Target], Awaitable[T]]) -> T:
        assert ex.target is not None
        targets = {t.model.name: t for t in (ex.target, *ex.fallbacks)}
        plan = [self._candidates[name] for name in targets]

        deadline = ex.started + self._policy.deadline_s  # from the request's arrival

        async def call(candidate: Candidate) -> T:
            target = ex.target = targets[candidate.name]
            remaining = deadline - time.perf_counter()
            try:
                # The deadline bounds a running attempt too (for a stream: up to its first chunk).
                async with asyncio.timeout(max(0.0, remaining)):
                    return await attempt(target)
            except TimeoutError as exc:
                raise UpstreamTimeoutError(
                    f"{target.provider}: no answer within the routing deadline "
                    f"({self._policy.deadline_s:g} s)",
                    provider=target.provider,
                ) from exc

        # One deadline on one clock: the cut of a running attempt and the retry loop's
        # check after it read the same instant, counted from the request's arrival.
        try:
            result, records = await run_with_fallbacks(
                plan,
                call,
                policy=self._policy,
                breakers=self._breakers,
                rng=self._rng,
                clock=time.perf_counter,
                started=ex.started,
            )
        except Exception as exc:
            ex.attempts = attempts_of(exc)
            self._count_retries(ex)
            raise
        ex.attempts = records
        self._count_retries(ex)
        if len(plan) > 1 and ex.target.model.name != plan[0].name:
            self._metrics.fallbacks.labels(plan[0].name, ex.target.model.name).inc()
        return result

    def _count_retries(self, ex: Exchange) -> None:
        for before, after in zip(ex.attempts, ex.attempts[1:], strict=False):
            if (before.model, before.provider) == (after.model, after.provider):
                self._metrics.retries.labels(after.provider).inc()

    def settle(self, ex: Exchange) -> None:
        """After accounting: settle the budget reservation, remember the served model."""
        if ex.budget_reservation is None and not self._remembers(ex):
            return  # nothing to settle, so no task for this request
        task = asyncio.get_running_loop().create_task(self._settle(ex))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _remembers(self, ex: Exchange) -> bool:
        # Stickiness is read only when routing chooses a model, which needs the scorer.
        return (
            self._scorer is not None
            and ex.status < 400
            and ex.target is not None
            and ex.pricing is not None
        )

    async def _settle(self, ex: Exchange) -> None:
        try:
            if ex.budget_reservation is not None:
                await self._budgets.commit(ex)
            if self._remembers(ex):
                assert ex.target is not None and ex.pricing is not None
                await self._sticky.record(
                    ex.tenant,
                    ex.body.get("messages") or [],
                    model_name=ex.target.model.name,
                    prompt_tokens=ex.pricing.usage.prompt_tokens,
                )
        except Exception:  # settling is bookkeeping: it must never surface to a client
            log.exception("could not settle request %s", ex.request_id)

    async def budget_usage(self) -> list[BudgetUsage]:
        """Every budget's use in its current window."""
        return await self._budgets.usage()

    def circuit_states(self) -> dict[str, str]:
        return self._breakers.states()

    async def probe(self) -> dict[str, Any]:
        """Readiness detail: circuit states. An open circuit degrades, it does not fail."""
        states = self._breakers.states()
        return {
            "ok": True,
            "critical": False,
            "open": sorted(k for k, v in states.items() if v != "closed"),
            "states": states,
        }

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
