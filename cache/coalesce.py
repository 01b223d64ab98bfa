"""Request coalescing: identical requests in flight together make one upstream call.

Within a process, the first request for a key registers a future; later ones
await it. Across workers and replicas, the first process to take the store's
lock (SET NX PX on Redis) leads; the others poll for the cache entry until it
appears, the lock disappears, or ``max_wait_s`` passes. The leader keeps its
lock alive with a heartbeat, so a crashed leader frees its followers within
``lock_ttl_s``, while a slow but live one keeps them waiting for its answer.

A follower is only ever handed an answer that passed the cache policy. When
the leader's answer is not cacheable, followers go to the upstream
themselves (the leader marks the key ``nostore:`` briefly so that followers
in other processes know). When the leader fails (no answer at all), exactly
one follower takes over as the new leader and the others follow it: a
failing upstream then sees one call per round, not one per waiting request.
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
NOSTORE_PREFIX: Final = "nostore:"


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
    takeovers: int = 0  # followers that led after their leader failed


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How a leader's flight ended, as its local followers learn it."""

    answer: Completion | None
    failed: bool  # no answer at all: one follower takes over


_FAILED: Final = _Outcome(None, failed=True)
_UNCACHEABLE: Final = _Outcome(None, failed=False)


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
        waiters: asyncio.Future[_Outcome] | None,
        uncacheable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.role: Role = role
        self.answer = answer
        self._accept = accept
        self._save = save
        self._waiters = waiters
        self._uncacheable = uncacheable
        self._published = False

    async def publish(self, completion: Mapping[str, Any]) -> bool:
        """Share a successful answer with followers and store it, subject to policy.

        Returns whether it was stored. Only the first call has an effect. An
        answer the policy refuses is not shared: followers go upstream alone.
        """
        if self.answer is not None or self._published:
            return False
        self._published = True
        accepted = self._accept(completion)
        if self._waiters is not None and not self._waiters.done():
            self._waiters.set_result(
                _Outcome(dict(completion), False) if accepted else _UNCACHEABLE
            )
        if not accepted:
            if self._uncacheable is not None:
                await self._uncacheable()
            return False
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
        self._inflight: dict[str, asyncio.Future[_Outcome]] = {}
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
        if not coalesce:
            yield self._settled(None, accept=accept, save=save)
            return
        existing = self._inflight.get(key)
        takeover = False
        while existing is not None:
            outcome = await self._wait_local(existing)
            if outcome is None or not outcome.failed:
                answer = outcome.answer if outcome is not None else None
                yield self._settled(answer, accept=accept, save=save)
                return
            # The leader failed: the first follower to wake finds no flight and leads.
            existing = self._inflight.get(key)
            takeover = True
        waiters: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = waiters
        token: str | None = None
        heartbeat: asyncio.Task[None] | None = None
        try:
            token, answer = await self._lead_or_follow(key)
            if answer is not None:
                waiters.set_result(_Outcome(answer, False))
                yield self._settled(copy.deepcopy(answer), accept=accept, save=save)
                return
            if token is not None:
                heartbeat = asyncio.create_task(self._keep_lock(key, token))
            self.stats.leaders += 1
            self.stats.takeovers += takeover
            yield Flight(
                role="leader",
                answer=None,
                accept=accept,
                save=save,
                waiters=waiters,
                uncacheable=self._marker(key) if token is not None else None,
            )
        finally:
            # The lock goes first, so that a follower taking over can take it at once.
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if token is not None:
                await self._store.release_lock(key, token)
            if self._inflight.get(key) is waiters:
                del self._inflight[key]
            if not waiters.done():
                waiters.set_result(_FAILED)

    def _marker(self, key: str) -> Callable[[], Awaitable[None]]:
        async def mark() -> None:
            # Followers elsewhere see the lock go without an answer; this tells
            # them it was not a failure, so they go upstream alone at once.
            await self._store.set(NOSTORE_PREFIX + key, b"1", self._policy.lock_ttl_s)

        return mark

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

    async def _wait_local(self, waiters: asyncio.Future[_Outcome]) -> _Outcome | None:
        """The leader's outcome (None when waiting timed out), answer copied."""
        try:
            # Shielded: a follower that gives up must not cancel the group.
            outcome = await asyncio.wait_for(asyncio.shield(waiters), self._policy.max_wait_s)
        except TimeoutError:
            return None
        if outcome.answer is None:
            return outcome
        return _Outcome(copy.deepcopy(outcome.answer), False)

    async def _lead_or_follow(self, key: str) -> tuple[str | None, Completion | None]:
        """(lock token, None) to lead; (None, answer) to follow; (None, None) to go alone."""
        deadline = asyncio.get_running_loop().time() + self._policy.max_wait_s
        while True:
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
            answer, leader_failed = await self._wait_remote(key, deadline)
            if answer is not None or not leader_failed:
                return None, answer
            # The remote leader failed: race the other followers for its lock.

    async def _wait_remote(self, key: str, deadline: float) -> tuple[Completion | None, bool]:
        """Poll until the remote leader's answer lands or its lock goes.

        Returns the answer, or (None, True) when the leader failed and its
        lock is free to take, or (None, False) to go upstream alone.
        """
        loop = asyncio.get_running_loop()
        while True:
            answer = await self._fetch(key)
            if answer is not None:
                return answer, False
            if not await self._store.lock_held(key):
                # The leader finished or died; its entry may have landed just before.
                answer = await self._fetch(key)
                if answer is not None:
                    return answer, False
                uncacheable = await self._store.get(NOSTORE_PREFIX + key) is not None
                return None, not uncacheable and loop.time() < deadline
            if loop.time() >= deadline:
                return None, False
            await asyncio.sleep(self._policy.poll_interval_s * random.uniform(0.5, 1.5))

    async def _keep_lock(self, key: str, token: str) -> None:
        interval = self._policy.lock_ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            if not await self._store.extend_lock(key, token, self._policy.lock_ttl_s):
                return
