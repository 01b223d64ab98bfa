"""Per-key rate limits: requests and tokens per minute (``auth.keys[].rpm`` / ``tpm``).

Fixed one-minute windows, counted in Redis when the cache backend is Redis
(so every replica shares them), else in memory. Tokens are estimated from the
request body's size (4 bytes a token): a limit has to be cheap to check
before anything else runs. An exceeded limit is a 429 with ``Retry-After``
set to the seconds left in the window. A Redis failure lets the request
through: rate limiting must not become an outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.errors import RateLimitError
from proxy.pipeline.auth import Principal

log = logging.getLogger("spendgate")

WINDOW_S = 60
BYTES_PER_TOKEN = 4


class RateLimiter:
    def __init__(
        self,
        *,
        redis: Redis | None = None,
        prefix: str = "spendgate:ratelimit:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._local: dict[str, int] = {}
        self._local_window = -1

    async def check(self, principal: Principal, *, body_bytes: int) -> None:
        """Count this request against its key's limits; 429 when over."""
        if principal.key_id is None or (principal.rpm is None and principal.tpm is None):
            return
        now = self._clock()
        window = int(now // WINDOW_S)
        retry_after = str(max(1, int((window + 1) * WINDOW_S - now)))
        tokens = max(1, body_bytes // BYTES_PER_TOKEN)
        for kind, limit, amount in (("rpm", principal.rpm, 1), ("tpm", principal.tpm, tokens)):
            if limit is None:
                continue
            used = await self._add(f"{principal.key_id}:{kind}:{window}", amount, window)
            if used is not None and used > limit:
                unit = "requests" if kind == "rpm" else "tokens"
                raise RateLimitError(
                    f"rate limit of {limit} {unit} per minute reached for key {principal.key_id}",
                    headers={"retry-after": retry_after},
                )

    async def _add(self, key: str, amount: int, window: int) -> int | None:
        if self._redis is None:
            if window != self._local_window:
                self._local.clear()  # counts of past windows no longer matter
                self._local_window = window
            self._local[key] = self._local.get(key, 0) + amount
            return self._local[key]
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incrby(self._prefix + key, amount)
            pipe.expire(self._prefix + key, WINDOW_S * 2)
            used, _ = await pipe.execute()
            return int(used)
        except (RedisError, OSError):
            log.warning("rate limit counters unavailable in redis; letting the request through")
            return None
