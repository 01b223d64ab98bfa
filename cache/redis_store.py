"""Redis backend shared by every worker and replica.

Each operation runs under a tight timeout behind a circuit breaker: a slow or
dead Redis costs a request at most ``op_timeout_s`` before the breaker opens,
and nothing while it is open. Half-open probes let it close again by itself
once Redis answers. Every failure becomes a miss or a no-op here, so the
request path never sees a Redis exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis

from cache.store import StoreHealth, StoreStats
from routing.breaker import BreakerState, CircuitBreaker

_log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OP_TIMEOUT_S: Final = 0.05
LOCK_SUFFIX: Final = "lock:"

# Compare-and-act scripts so only the holder of a lock can release or extend it.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class _Failed:
    """Marks an operation that did not reach Redis or did not finish."""


_FAILED: Final = _Failed()


class RedisStore:
    """:class:`~cache.store.CacheStore` on ``redis.asyncio``; keys live under ``prefix``."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        ttl_s: int,
        op_timeout_s: float = DEFAULT_OP_TIMEOUT_S,
        breaker: CircuitBreaker,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._client = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._op_timeout_s = op_timeout_s
        self._breaker = breaker
        self._stats = StoreStats()

    @property
    def stats(self) -> StoreStats:
        """The backend's counters."""
        return self._stats

    @property
    def breaker_state(self) -> BreakerState:
        """State of the breaker guarding Redis."""
        return self._breaker.state

    def health(self) -> StoreHealth:
        """Healthy unless the breaker is open or probing."""
        state = self._breaker.state
        return StoreHealth(backend="redis", ok=state is BreakerState.CLOSED, breaker=state.value)

    async def ping(self) -> bool:
        """One PING through the breaker, for readiness checks."""
        result = await self._run(self._client.ping)
        return result is True

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``; None when absent or Redis fails."""
        self._stats.gets += 1
        result = await self._run(lambda: self._client.get(self._prefix + key))
        return result if isinstance(result, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """SET with an expiry in milliseconds; False when Redis fails."""
        ttl_ms = _millis(ttl_s if ttl_s is not None else self._ttl_s)
        if ttl_ms <= 0:
            return False
        result = await self._run(lambda: self._client.set(self._prefix + key, value, px=ttl_ms))
        if result is True:
            self._stats.sets += 1
            return True
        return False

    async def delete(self, key: str) -> None:
        """DEL ``key``; ignored when Redis fails."""
        self._stats.deletes += 1
        await self._run(lambda: self._client.delete(self._prefix + key))

    async def acquire_lock(self, key: str, token: str, ttl_s: float) -> bool | None:
        """SET NX PX; None when Redis cannot be asked."""
        name = self._lock_name(key)
        result = await self._run(lambda: self._client.set(name, token, nx=True, px=_millis(ttl_s)))
        if isinstance(result, _Failed):
            return None
        return result is True

    async def extend_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """PEXPIRE the lock if ``token`` holds it."""
        name = self._lock_name(key)
        result = await self._run(lambda: _eval(self._client, _EXTEND, name, token, _millis(ttl_s)))
        return result == 1

    async def release_lock(self, key: str, token: str) -> None:
        """DEL the lock if ``token`` holds it."""
        name = self._lock_name(key)
        await self._run(lambda: _eval(self._client, _RELEASE, name, token))

    async def lock_held(self, key: str) -> bool:
        """EXISTS on the lock; False when Redis fails, so waiters move on."""
        name = self._lock_name(key)
        result = await self._run(lambda: self._client.exists(name))
        return isinstance(result, int) and result > 0

    def _lock_name(self, key: str) -> str:
        return self._prefix + LOCK_SUFFIX + key

    async def _run(self, operation: Callable[[], Awaitable[T]]) -> T | _Failed:
        if not self._breaker.allow():
            self._stats.rejected += 1
            return _FAILED
        try:
            result = await asyncio.wait_for(operation(), self._op_timeout_s)
        except TimeoutError:
            self._stats.timeouts += 1
            self._breaker.record_failure()
            return _FAILED
        except Exception as exc:
            # Any client error (connection refused, protocol, auth) means the
            # cache is unusable for this call; the request goes on without it.
            self._stats.errors += 1
            self._breaker.record_failure()
            _log.debug("redis cache operation failed: %r", exc)
            return _FAILED
        except BaseException:
            # Cancelled mid-call (the client went away). That says nothing
            # about Redis, except that a consumed half-open probe must not
            # leave the breaker waiting forever for its outcome.
            if self._breaker.state is not BreakerState.CLOSED:
                self._breaker.record_failure()
            raise
        self._breaker.record_success()
        return result


async def _eval(client: aioredis.Redis, script: str, name: str, *args: Any) -> Any:
    return await client.eval(script, 1, name, *args)


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000)) if seconds > 0 else 0
