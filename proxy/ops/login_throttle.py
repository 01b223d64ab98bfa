"""Throttling admin-key guessers: 5 wrong keys from one address in a minute, then 429.

Every place that checks the admin key (the dashboard's login form, a bearer
key on ``/admin`` or ``/dashboard``) asks ``check`` first and reports the
outcome. The first failure from an address opens a one-minute window; once
it holds ``limit`` failures, every attempt from that address is answered 429
with ``Retry-After`` until the window ends, whatever key it carries:
answering a right key differently would tell a guesser when it guessed
right. A success clears the address's count and adds no delay.

Counts live in Redis when the proxy has one (every worker and replica then
share them), else in this process. If Redis fails, the process's own counts
take over: a guesser is still slowed, per process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.errors import RateLimitError

log = logging.getLogger("spendgate")

MAX_FAILURES = 5
WINDOW_S = 60
MAX_TRACKED = 10_000  # addresses remembered in memory; the oldest go first


class LoginThrottle:
    """Counts failed admin-key attempts per client address."""

    def __init__(
        self,
        *,
        redis: Redis | None = None,
        prefix: str = "spendgate:login:",
        limit: int = MAX_FAILURES,
        window_s: int = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._local: dict[str, tuple[int, float]] = {}  # address -> (failures, window end)

    async def check(self, address: str) -> None:
        """Raise a 429 (with ``Retry-After``) while ``address`` is locked out."""
        failures, retry_after = await self._state(address)
        if failures >= self._limit:
            raise RateLimitError(
                f"too many wrong admin keys from this address; try again in {retry_after} s",
                code="login_throttled",
                headers={"retry-after": str(retry_after)},
            )

    async def failed(self, address: str) -> None:
        """Count one wrong admin key from ``address``."""
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=True)
                pipe.incr(self._prefix + address)
                pipe.expire(self._prefix + address, self._window_s, nx=True)
                await pipe.execute()
                return
            except (RedisError, OSError):
                log.warning("login throttle counters unavailable in redis; counting in memory")
        now = self._clock()
        failures, ends = self._live(address, now)
        self._local.pop(address, None)  # re-inserted last: the dict stays oldest-first
        self._local[address] = (failures + 1, ends if failures else now + self._window_s)
        while len(self._local) > MAX_TRACKED:
            del self._local[next(iter(self._local))]

    async def succeeded(self, address: str) -> None:
        """A right key: forget the address's failures."""
        self._local.pop(address, None)
        if self._redis is not None:
            try:
                await self._redis.delete(self._prefix + address)
            except (RedisError, OSError):
                log.warning("login throttle counters unavailable in redis")

    async def _state(self, address: str) -> tuple[int, int]:
        """(failures in the current window, seconds until it ends)."""
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.get(self._prefix + address)
                pipe.ttl(self._prefix + address)
                raw, ttl = await pipe.execute()
                remote = int(raw or 0), max(1, int(ttl))
            except (RedisError, OSError):
                log.warning("login throttle counters unavailable in redis; counting in memory")
            else:
                local = self._memory_state(address)
                return max(remote, local)  # failures counted here while Redis was away
        return self._memory_state(address)

    def _memory_state(self, address: str) -> tuple[int, int]:
        now = self._clock()
        failures, ends = self._live(address, now)
        return failures, max(1, int(ends - now + 0.999))

    def _live(self, address: str, now: float) -> tuple[int, float]:
        failures, ends = self._local.get(address, (0, now))
        if ends <= now:
            self._local.pop(address, None)
            return 0, now
        return failures, ends
