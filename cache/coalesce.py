"""Request coalescing: identical requests in flight together make one upstream call.

Within a process, the first request for a key registers a future; later ones
await it. Across workers and replicas, the first process to take the store's
lock (SET NX PX on Redis) leads; the others poll for the cache entry until it
appears, the lock disappears, or ``max_wait_s`` passes. The leader keeps its
lock alive with a heartbeat, so a crashed leader frees its followers within
``lock_ttl_s``, while a slow but live one keeps them waiting for its answer.

A follower is only ever handed an answer that passed the cache policy. When
the leader fails or its answer is not cacheable, followers go to the upstream
themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cache.store import CacheStore

Completion = dict[str, Any]
Role = Literal["leader", "follower", "solo"]

DEFAULT_LOCK_TTL_S: Final = 10.0
DEFAULT_MAX_WAIT_S: Final = 120.0
DEFAULT_POLL_INTERVAL_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class CoalescePolicy:
    """Timings of cross-process coalescing."""

    lock_ttl_s: float = DEFAULT_LOCK_TTL_S
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S


DEFAULT_COALESCE_POLICY: Final = CoalescePolicy()


@dataclass(slots=True)
class CoalesceStats:
    """Counters of coalescing outcomes."""

    leaders: int = 0
    followers: int = 0
    solo: int = 0
    lock_unavailable: int = 0


class Flight:
    """One request's part in a coalesced group.

    ``answer`` is the completion a follower serves; it is None for whoever
    must call the upstream (``role`` "leader" or "solo"), who then calls
    :meth:`publish` with the successful answer.
    """

    def __init__(
        self,
        *,
        role: Role,
        answer: Completion | None,
        accept: Callable[[Mapping[str, Any]], bool],
        save: Callable[[Mapping[str, Any]], Awaitable[bool]] | None,
        waiters: asyncio.Future[Completion | None] | None,
    ) -> None:
        self.role: Role = role
        self.answer = answer
        self._accept = accept
        self._save = save
        self._waiters = waiters
        self._published = False

    async def publish(self, completion: Mapping[str, Any]) -> bool:
        """Share a successful answer with followers and store it, subject to policy.

        Returns whether it was stored. Only the first call has an effect.
        """
        if self.answer is not None or self._published or not self._accept(completion):
            return False
        self._published = True
        if self._waiters is not None and not self._waiters.done():
            self._waiters.set_result(dict(completion))
        if self._save is None:
            return False
        return await self._save(completion)


class Coalescer:
    """Groups concurrent flights per key, in this process and through ``store``."""

    def __init__(
        self,
        store: CacheStore,
        *,
        fetch: Callable[[str], Awaitable[Completion | None]],
        policy: CoalescePolicy = DEFAULT_COALESCE_POLICY,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._policy = policy
        self._inflight: dict[str, asyncio.Future[Completion | None]] = {}
        self.stats = CoalesceStats()

    @contextlib.asynccontextmanager
    async def flight(
        self,
        key: str,
        *,
        accept: Callable[[Mapping[str, Any]], bool],
        save: Callable[[Mapping[str, Any]], Awaitable[bool]] | None,
        coalesce: bool = True,
    ) -> AsyncIterator[Flight]:
        """Lead, follow or go alone for ``key``; see :class:`Flight`."""
        existing = self._inflight.get(key) if coalesce else None
        if not coalesce or existing is not None:
            answer = await self._wait_local(existing) if existing is not None else None
            yield self._settled(answer, accept=accept, save=save)
            return
        waiters: asyncio.Future[Completion | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = waiters
        token: str | None = None
        heartbeat: asyncio.Task[None] | None = None
        try:
            token, answer = await self._lead_or_follow(key)
            if answer is not None:
                waiters.set_result(answer)
                yield self._settled(copy.deepcopy(answer), accept=accept, save=save)
                return
            if token is not None:
                heartbeat = asyncio.create_task(self._keep_lock(key, token))
            self.stats.leaders += 1
            yield Flight(role="leader", answer=None, accept=accept, save=save, waiters=waiters)
        finally:
            if self._inflight.get(key) is waiters:
                del self._inflight[key]
            if not waiters.done():
                waiters.set_result(None)
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if token is not None:
                await self._store.release_lock(key, token)

    def _settled(
        self,
        answer: Completion | None,
        *,
        accept: Callable[[Mapping[str, Any]], bool],
        save: Callable[[Mapping[str, Any]], Awaitable[bool]] | None,
    ) -> Flight:
        if answer is not None:
            self.stats.followers += 1
            return Flight(role="follower", answer=answer, accept=accept, save=None, waiters=None)
        self.stats.solo += 1
        return Flight(role="solo", answer=None, accept=accept, save=save, waiters=None)

    async def _wait_local(self, waiters: asyncio.Future[Completion | None]) -> Completion | None:
        try:
            # Shielded: a follower that gives up must not cancel the group.
            answer = await asyncio.wait_for(asyncio.shield(waiters), self._policy.max_wait_s)
        except TimeoutError:
            return None
        return copy.deepcopy(answer) if answer is not None else None

    async def _lead_or_follow(self, key: str) -> tuple[str | None, Completion | None]:
        token = uuid.uuid4().hex
        acquired = await self._store.acquire_lock(key, token, self._policy.lock_ttl_s)
        if acquired is None:
            self.stats.lock_unavailable += 1
            return None, None
        if acquired:
            # The entry may have landed between the caller's lookup and the lock.
            answer = await self._fetch(key)
            if answer is not None:
                await self._store.release_lock(key, token)
                return None, answer
            return token, None
        return None, await self._wait_remote(key)

    async def _wait_remote(self, key: str) -> Completion | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.max_wait_s
        while True:
            answer = await self._fetch(key)
            if answer is not None:
                return answer
            if not await self._store.lock_held(key):
                # The leader finished or died; its entry may have landed just before.
                return await self._fetch(key)
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(self._policy.poll_interval_s * random.uniform(0.5, 1.5))

    async def _keep_lock(self, key: str, token: str) -> None:
        interval = self._policy.lock_ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            if not await self._store.extend_lock(key, token, self._policy.lock_ttl_s):
                return
