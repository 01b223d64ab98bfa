"""Circuit breakers: closed -> open -> half-open -> closed.

``CircuitBreaker`` is the pure, synchronous state machine; the clock is
injected so tests drive time by hand. A breaker opens after
``failure_threshold`` consecutive failures, refuses calls for ``open_s``
seconds, then lets ``half_open_probes`` calls through; one success closes it,
one failure opens it again.

``BreakerRegistry`` keeps one breaker per provider+model. With a Redis client
the state lives in one Redis hash per breaker (failures, opened_at on the wall
clock, probes left), updated by Lua scripts so replicas share it; a Redis
error never fails a request: the registry then decides from its local
breakers, which it keeps updated all along.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

_log = logging.getLogger(__name__)

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_OPEN_S = 30.0
DEFAULT_HALF_OPEN_PROBES = 1


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    open_s: float = DEFAULT_OPEN_S
    half_open_probes: int = DEFAULT_HALF_OPEN_PROBES


class CircuitBreaker:
    """One breaker for one protected thing (a provider+model, a Redis server)."""

    def __init__(
        self,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probes_left = 0

    @property
    def state(self) -> BreakerState:
        """The state now (open turns half-open by itself once ``open_s`` has passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._policy.open_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """Whether a call may go ahead now. Consumes a half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._probes_left > 0:
            self._probes_left -= 1
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """A call failed: count it, and open the breaker at the threshold or when half-open."""
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN or self._failures >= self._policy.failure_threshold:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probes_left = self._policy.half_open_probes


# Returns {allowed (0/1), opened_at or false}. Consumes a probe when half-open.
_ALLOW_LUA = """
local opened = redis.call('HGET', KEYS[1], 'opened_at')
if not opened then return {1, false} end
if tonumber(ARGV[1]) - tonumber(opened) < tonumber(ARGV[2]) then return {0, opened} end
local probes = tonumber(redis.call('HGET', KEYS[1], 'probes') or '0')
if probes > 0 then
  redis.call('HINCRBY', KEYS[1], 'probes', -1)
  return {1, opened}
end
return {0, opened}
"""

# ARGV: now, open_s, failure_threshold, half_open_probes, ttl_s. Returns opened_at or false.
_FAILURE_LUA = """
local now = tonumber(ARGV[1])
local opened = redis.call('HGET', KEYS[1], 'opened_at')
local half_open = opened and (now - tonumber(opened) >= tonumber(ARGV[2]))
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if half_open or ((not opened) and failures >= tonumber(ARGV[3])) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1], 'probes', ARGV[4])
  opened = ARGV[1]
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return opened
"""


def breaker_key(provider: str, model: str) -> str:
    """The registry key of one provider+model."""
    return f"{provider}/{model}"


class BreakerRegistry:
    """One circuit breaker per provider+model, optionally shared through Redis."""

    def __init__(
        self,
        policy: BreakerPolicy = BreakerPolicy(),
        *,
        redis: Redis | None = None,
        key_prefix: str = "spendgate:breaker:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._redis = redis
        self._prefix = key_prefix
        self._clock = clock
        self._local: dict[str, CircuitBreaker] = {}
        # Last opened_at seen in Redis per key (None = closed), for states().
        self._shared: dict[str, float | None] = {}
        # Idle breakers expire from Redis; an open one must outlive its open period.
        self._ttl_s = max(600, int(policy.open_s * 4))

    def _breaker(self, key: str) -> CircuitBreaker:
        breaker = self._local.get(key)
        if breaker is None:
            breaker = self._local[key] = CircuitBreaker(self._policy, clock=self._clock)
        return breaker

    async def _eval(self, script: str, key: str, *args: Any) -> Any:
        assert self._redis is not None
        return await self._redis.eval(script, 1, self._prefix + key, *args)

    async def allow(self, key: str) -> bool:
        """Whether a call to ``key`` may go ahead now (consumes a half-open probe)."""
        local_allowed = self._breaker(key).allow()
        if self._redis is None:
            return local_allowed
        try:
            allowed, opened = await self._eval(
                _ALLOW_LUA, key, repr(self._clock()), repr(self._policy.open_s)
            )
        except (RedisError, OSError):
            _log.warning("breaker state in redis unavailable; deciding locally for %s", key)
            self._shared.pop(key, None)
            return local_allowed
        self._shared[key] = float(opened) if opened else None
        return bool(allowed)

    async def record_success(self, key: str) -> None:
        """A call to ``key`` succeeded: close its breaker."""
        self._breaker(key).record_success()
        if self._redis is None:
            return
        try:
            await self._redis.delete(self._prefix + key)
        except (RedisError, OSError):
            _log.warning("breaker state in redis unavailable; closed locally for %s", key)
            self._shared.pop(key, None)
            return
        self._shared[key] = None

    async def record_failure(self, key: str) -> None:
        """A call to ``key`` failed in a way that counts against the provider."""
        self._breaker(key).record_failure()
        if self._redis is None:
            return
        p = self._policy
        try:
            opened = await self._eval(
                _FAILURE_LUA,
                key,
                repr(self._clock()),
                repr(p.open_s),
                p.failure_threshold,
                p.half_open_probes,
                self._ttl_s,
            )
        except (RedisError, OSError):
            _log.warning("breaker state in redis unavailable; counted locally for %s", key)
            self._shared.pop(key, None)
            return
        self._shared[key] = float(opened) if opened else None

    def state(self, key: str) -> BreakerState:
        """The last known state of ``key`` (from Redis when shared and reachable)."""
        if key not in self._shared:
            return self._breaker(key).state if key in self._local else BreakerState.CLOSED
        opened = self._shared[key]
        if opened is None:
            return BreakerState.CLOSED
        if self._clock() - opened < self._policy.open_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def available(self, key: str) -> bool:
        """Whether ``key`` may be offered to the router (its circuit is not open)."""
        return self.state(key) is not BreakerState.OPEN

    def states(self) -> dict[str, str]:
        """Every known breaker's state, for /readyz and metrics."""
        keys = sorted(set(self._local) | set(self._shared))
        return {key: self.state(key).value for key in keys}
