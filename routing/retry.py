"""Retries and fallbacks across an ordered plan of candidate models.

Each candidate gets up to ``attempts_per_candidate`` tries; a retryable error
(``proxy.errors.is_retryable``) is retried after a jittered exponential
backoff that honours the upstream's Retry-After, then the next candidate is
tried. A non-retryable error (say an upstream 400) is raised at once: another
model would get the same bad request. Attempts stop at ``max_attempts`` or
when the deadline passes, and the last error is raised with the attempt log
attached (``attempts_of``). Streaming callers make ``attempt`` return as soon
as the first chunk is in hand, so no fallback happens after the first byte.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from proxy.errors import UpstreamConnectionError, UpstreamStatusError, is_retryable
from routing.breaker import BreakerRegistry, breaker_key
from routing.select import Candidate

T = TypeVar("T")

_ATTEMPTS_ATTR = "spendgate_attempts"


class Random(Protocol):
    """The part of ``random.Random`` the backoff uses."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: total attempts, backoff base and cap, overall deadline (seconds)."""

    max_attempts: int = 4
    base_s: float = 0.25
    cap_s: float = 4.0
    deadline_s: float = 30.0
    attempts_per_candidate: int = 2

    def backoff_s(
        self,
        attempt: int,
        *,
        retry_after_s: float | None,
        rng: Random,
        remaining_s: float | None = None,
    ) -> float:
        """Delay before retry number ``attempt`` (1 = first retry).

        Equal jitter: half the capped exponential step is fixed, half random, so
        retries spread out but never collapse to zero. A Retry-After from the
        upstream is a floor. The result never exceeds ``remaining_s``.
        """
        step = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        delay = step / 2 + rng.random() * step / 2
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        if remaining_s is not None:
            delay = min(delay, max(0.0, remaining_s))
        return delay


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try: which model, how it ended, how long it took."""

    model: str
    provider: str
    outcome: str  # "ok", "error" or "skipped" (circuit open)
    error_type: str | None
    status: int | None
    ms: float


def attempts_of(exc: BaseException) -> list[AttemptRecord]:
    """The attempt log attached to an error raised by ``run_with_fallbacks``."""
    attempts: list[AttemptRecord] = getattr(exc, _ATTEMPTS_ATTR, [])
    return attempts


def _fail(exc: BaseException, attempts: list[AttemptRecord]) -> BaseException:
    setattr(exc, _ATTEMPTS_ATTR, attempts)
    return exc


def _record(cand: Candidate, exc: BaseException | None, ms: float) -> AttemptRecord:
    if exc is None:
        return AttemptRecord(cand.name, cand.provider, "ok", None, None, ms)
    status = exc.upstream_status if isinstance(exc, UpstreamStatusError) else None
    return AttemptRecord(cand.name, cand.provider, "error", type(exc).__name__, status, ms)


@dataclass(slots=True)
class _Run:
    policy: RetryPolicy
    clock: Callable[[], float]
    started: float
    attempts: list[AttemptRecord]

    def remaining(self) -> float:
        """Seconds left before the deadline."""
        return self.policy.deadline_s - (self.clock() - self.started)

    def exhausted(self) -> bool:
        """Whether the attempt budget or the deadline is used up (skips do not count)."""
        tried = sum(1 for a in self.attempts if a.outcome != "skipped")
        return tried >= self.policy.max_attempts or self.remaining() <= 0


async def run_with_fallbacks(
    plan: Sequence[Candidate],
    attempt: Callable[[Candidate], Awaitable[T]],
    *,
    policy: RetryPolicy,
    breakers: BreakerRegistry,
    rng: Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    started: float | None = None,
) -> tuple[T, list[AttemptRecord]]:
    """Call ``attempt`` on the plan's candidates in order until one succeeds.

    Returns the result and the attempt log. ``rng`` defaults to an unseeded
    ``random.Random`` (jitter exists to decorrelate replicas). The deadline counts
    from ``started`` (a reading of ``clock``), by default from now.
    """
    rng = rng if rng is not None else random.Random()
    run = _Run(policy, clock, clock() if started is None else started, [])
    last: BaseException | None = None
    for cand in plan:
        key = breaker_key(cand.provider, cand.name)
        if not await breakers.allow(key):
            run.attempts.append(AttemptRecord(cand.name, cand.provider, "skipped", None, None, 0.0))
            continue
        for n in range(1, policy.attempts_per_candidate + 1):
            if run.exhausted():
                break
            t0 = clock()
            try:
                result = await attempt(cand)
            except Exception as exc:
                run.attempts.append(_record(cand, exc, (clock() - t0) * 1000))
                if not is_retryable(exc):
                    raise _fail(exc, run.attempts) from None
                await breakers.record_failure(key)
                last = exc
                if n == policy.attempts_per_candidate or not await _wait(exc, n, run, rng, sleep):
                    break
                continue
            run.attempts.append(_record(cand, None, (clock() - t0) * 1000))
            await breakers.record_success(key)
            return result, run.attempts
        if run.exhausted():
            break
    if last is None:
        last = UpstreamConnectionError(
            "no model available: every candidate's circuit is open",
            provider=plan[0].provider if plan else "none",
        )
    raise _fail(last, run.attempts)


async def _wait(
    exc: BaseException,
    retry: int,
    run: _Run,
    rng: Random,
    sleep: Callable[[float], Awaitable[None]],
) -> bool:
    """Sleep before retrying the same candidate; False to move on to the next one instead."""
    if run.exhausted():
        return False
    retry_after = exc.retry_after_s if isinstance(exc, UpstreamStatusError) else None
    remaining = run.remaining()
    if retry_after is not None and retry_after >= remaining:
        return False
    await sleep(
        run.policy.backoff_s(retry, retry_after_s=retry_after, rng=rng, remaining_s=remaining)
    )
    return True
