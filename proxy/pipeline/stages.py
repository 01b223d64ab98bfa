"""The interfaces of the pipeline's pluggable stages.

The chat handler (``proxy.pipeline.chat``) runs them in order; each is built once per
app from the settings and kept on the app's state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from proxy.pipeline.exchange import Exchange, Target

T = TypeVar("T")


class CacheStage(Protocol):
    async def lookup(self, ex: Exchange) -> dict[str, Any] | None:
        """A stored chat.completion for this request, or None. Sets ``ex.cache_status``."""
        ...

    async def join(self, ex: Exchange) -> dict[str, Any] | None:
        """Coalesce with identical requests in flight: a follower gets the answer."""
        ...

    async def store(self, ex: Exchange, completion: dict[str, Any] | None) -> None:
        """Keep a finished answer (None: the call failed) and close the flight. Never raises."""
        ...

    def store_later(self, ex: Exchange, completion: dict[str, Any] | None) -> None:
        """``store``, scheduled, for code that may not await."""
        ...


class RouterStage(Protocol):
    def resolve(self, ex: Exchange) -> None:
        """Check the requested model exists (404 otherwise), before any lookup."""
        ...

    async def plan(self, ex: Exchange) -> None:
        """Choose ``ex.target`` and ``ex.fallbacks``; enforce budgets before the call."""
        ...

    def target_for(self, model: str) -> Target | None:
        """The configured target whose name or upstream name is ``model``."""
        ...

    async def run(self, ex: Exchange, attempt: Callable[[Target], Awaitable[T]]) -> T:
        """Call ``attempt`` on the plan's targets with retries and fallbacks."""
        ...


class AccountingStage(Protocol):
    def charge(self, ex: Exchange) -> None:
        """Price ``ex`` (sets ``ex.charges``) from its usage, cache status and models."""
        ...

    def record(self, ex: Exchange) -> None:
        """Write the ledger row and metrics. Never raises, never blocks."""
        ...
