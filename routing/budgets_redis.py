"""Budget counters in Redis, shared by every worker and replica (see ``routing.budgets``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from redis.exceptions import RedisError

from proxy.errors import SpendgateError
from routing.budgets import (
    PERIOD_TTL_S,
    Budget,
    BudgetContext,
    BudgetUsage,
    Reservation,
    charges_for,
    exceeded,
    merge_static,
    utc_now,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

_log = logging.getLogger("routing.budgets")


# KEYS: the counters; ARGV[1] = estimate, then one limit per key, then one TTL per key.
# Returns {0, 0} when reserved, else {index of the first counter over its limit, its usage}.
_RESERVE_LUA = """
local est = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + est > tonumber(ARGV[1 + i]) then return {i, used} end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], est)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1 + n + i]) end
end
return {0, 0}
"""


class RedisBudgetLedger:
    """Budget counters in Redis, shared by every replica.

    Reservation is one Lua script over all matching counters, so it is atomic
    across processes. Counter keys share one hash tag so the script also works
    on Redis Cluster. With ``fail_open`` a Redis outage lets requests through
    unmetered (logged); without it the request fails with a ``SpendgateError``.
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        *,
        redis: Redis,
        key_prefix: str = "spendgate:{budgets}:",
        fail_open: bool = True,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._budgets = tuple(budgets)
        self._redis = redis
        self._prefix = key_prefix
        self._fail_open = fail_open
        self._now = now

    def _unavailable(self, exc: Exception, what: str) -> None:
        if not self._fail_open:
            raise SpendgateError(f"budget ledger unavailable during {what}") from exc
        _log.warning("budget ledger in redis unavailable during %s; not metered", what)

    async def check(self, ctx: BudgetContext, estimated_micro: int) -> None:
        """See ``BudgetLedger.check``."""
        charges = charges_for(self._budgets, ctx, self._now())
        if not charges:
            return
        try:
            values = await self._redis.mget([self._prefix + c.key for c in charges])
        except (RedisError, OSError) as exc:
            self._unavailable(exc, "check")
            return
        for charge, raw in zip(charges, values, strict=True):
            used = int(raw or 0)
            if used + estimated_micro > charge.budget.limit_micro:
                raise exceeded(charge, used, estimated_micro)

    async def reserve(self, ctx: BudgetContext, estimated_micro: int) -> Reservation:
        """See ``BudgetLedger.reserve``."""
        charges = charges_for(self._budgets, ctx, self._now())
        if not charges:
            return Reservation((), estimated_micro)
        args = [
            estimated_micro,
            *(c.budget.limit_micro for c in charges),
            *(PERIOD_TTL_S[c.budget.period] for c in charges),
        ]
        keys = [self._prefix + c.key for c in charges]
        try:
            index, used = await self._redis.eval(_RESERVE_LUA, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            self._unavailable(exc, "reserve")
            return Reservation((), estimated_micro)
        if int(index):
            raise exceeded(charges[int(index) - 1], int(used), estimated_micro)
        return Reservation(charges, estimated_micro)

    async def commit(self, reservation: Reservation, actual_micro: int) -> None:
        """See ``BudgetLedger.commit``."""
        delta = actual_micro - reservation.estimated_micro
        if not reservation.charges or delta == 0:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for charge in reservation.charges:
                    pipe.incrby(self._prefix + charge.key, delta)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._unavailable(exc, "commit")

    async def release(self, reservation: Reservation) -> None:
        """See ``BudgetLedger.release``."""
        await self.commit(reservation, 0)

    async def usage(self) -> list[BudgetUsage]:
        """See ``BudgetLedger.usage``."""
        now = self._now()
        rows: list[BudgetUsage] = []
        for b in self._budgets:
            window = b.window(BudgetContext(""), now) if b.period != "run" else "*"
            name = quote(b.name, safe="")
            pattern = f"{self._prefix}{name}|*|{window}"
            try:
                keys = [k async for k in self._redis.scan_iter(match=pattern, count=500)]
                values = await self._redis.mget(keys) if keys else []
            except (RedisError, OSError) as exc:
                self._unavailable(exc, "usage")
                continue
            for key, raw in zip(keys, values, strict=True):
                text = key.decode() if isinstance(key, bytes) else str(key)
                _, subject, key_window = text[len(self._prefix) :].split("|")
                rows.append(
                    BudgetUsage(b.name, subject, b.period, key_window, b.limit_micro, int(raw or 0))
                )
        return merge_static(self._budgets, rows, now)
