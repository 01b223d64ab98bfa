"""Budgets on the request path: reserve the estimate before the call, commit the cost after.

Every budget whose subject matches the request (tenant, key, agent,
workflow, run) is charged: the estimate is reserved atomically before the
call (429 ``budget_exceeded`` past a limit) and replaced by the actual cost
once the exchange is priced. A model with no known price cannot be metered,
so under a budget it is refused (403 ``budget_unpriced_model``) and routing
leaves it out of the choices and the fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from proxy.errors import BudgetUnpricedModelError
from proxy.pipeline.accounting import Accountant
from proxy.pipeline.exchange import Exchange, Target
from proxy.pipeline.models import ModelTable
from proxy.settings import Settings
from routing.budgets import (
    BudgetContext,
    BudgetLedger,
    BudgetUsage,
    MemoryBudgetLedger,
    budgets_from_config,
    charges_for,
    utc_now,
)
from routing.budgets_redis import RedisBudgetLedger
from routing.select import Candidate, expected_cost_micro

DEFAULT_EXPECTED_OUTPUT_TOKENS = 500


def _expected_output(ex: Exchange) -> int:
    """Output tokens to reserve for: the request's own cap, else a typical answer."""
    if ex.endpoint == "embeddings":
        return 0
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = ex.body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_EXPECTED_OUTPUT_TOKENS


class BudgetGate:
    """The configured budgets' counters: in memory, or in Redis for every worker and replica."""

    def __init__(
        self,
        settings: Settings,
        *,
        models: ModelTable,
        accountant: Accountant,
        candidates: Mapping[str, Candidate],
        redis: Redis | None,
        key_prefix: str,
    ) -> None:
        config = settings.config
        budgets = budgets_from_config(
            [b.model_dump(exclude_none=True, mode="json") for b in config.budgets]
        )
        self._ledger: BudgetLedger = (
            RedisBudgetLedger(
                budgets,
                redis=redis,
                key_prefix=key_prefix,
                fail_open=config.routing.budgets_fail_open,
            )
            if redis is not None
            else MemoryBudgetLedger(budgets)
        )
        self._accountant = accountant
        self._candidates = candidates
        self._has_budgets = bool(budgets)
        self._budget_list = tuple(budgets)
        # A budget cannot meter a model without a price: such models are refused under one.
        self.unpriced = frozenset(
            t.model.name for t in models.targets if not accountant.quote(t.model.name, 0).known
        )

    def _context(self, ex: Exchange) -> BudgetContext:
        return BudgetContext(
            tenant=ex.tenant,
            key_id=ex.principal.key_id if ex.principal else None,
            workflow=ex.tags.workflow,
            agent=ex.tags.agent,
            run_id=ex.tags.run,
        )

    def metered(self, ex: Exchange) -> bool:
        """Whether any budget applies to this request."""
        return bool(charges_for(self._budget_list, self._context(ex), utc_now()))

    async def reserve(self, ex: Exchange) -> None:
        """Hold the estimated cost of ``ex`` on its target against every matching budget."""
        assert ex.target is not None
        if not self._has_budgets or not self.metered(ex):
            return
        if ex.target.model.name in self.unpriced:
            raise self._unpriced_error(ex, ex.target)
        ex.fallbacks = tuple(t for t in ex.fallbacks if t.model.name not in self.unpriced)
        if ex.estimated_prompt_tokens is None:
            ex.estimated_prompt_tokens, _ = self._accountant.prompt_tokens(ex, ex.target.model.name)
        candidate = self._candidates[ex.target.model.name]
        estimate = expected_cost_micro(
            candidate,
            prompt_tokens=ex.estimated_prompt_tokens,
            output_tokens=_expected_output(ex),
        )
        ex.budget_reservation = await self._ledger.reserve(self._context(ex), estimate)

    def _unpriced_error(self, ex: Exchange, target: Target) -> BudgetUnpricedModelError:
        [first, *_] = charges_for(self._budget_list, self._context(ex), utc_now())
        name = target.model.name
        return BudgetUnpricedModelError(
            f"model '{name}' has no known price, so budget '{first.budget.name}' could not "
            f"meter this request; give models[].price for '{name}' or use a priced model",
            param="model",
        )

    async def commit(self, ex: Exchange) -> None:
        """Replace the reservation of a priced ``ex`` by its actual cost (once)."""
        reservation = ex.budget_reservation
        if reservation is None:
            return
        ex.budget_reservation = None
        # No cost: nothing was served (unpriced models never get here, see ``reserve``).
        cost = ex.charges.cost if ex.charges is not None else None
        await self._ledger.commit(reservation, cost if cost is not None else 0)

    async def usage(self) -> list[BudgetUsage]:
        """Every budget's use in its current window."""
        return await self._ledger.usage()
