"""Retries and fallbacks with a fake attempt function, a fake sleep and a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from proxy.errors import (
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from routing.breaker import BreakerPolicy, BreakerRegistry
from routing.retry import RetryPolicy, attempts_of, run_with_fallbacks
from routing.select import Candidate

pytestmark = pytest.mark.anyio


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


class FakeTime:
    """A clock that only moves when the code under test sleeps (or a call takes time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def status(code: int, retry_after: float | None = None) -> UpstreamStatusError:
    return UpstreamStatusError(
        f"upstream said {code}", provider="p", upstream_status=code, retry_after_s=retry_after
    )


class Script:
    """An attempt function that plays out a list of outcomes per model."""

    def __init__(
        self, time: FakeTime, outcomes: dict[str, list[Exception | str]], call_s: float = 0.0
    ):
        self.time = time
        self.outcomes = outcomes
        self.calls: list[str] = []
        self.call_s = call_s

    async def __call__(self, cand: Candidate) -> str:
        self.calls.append(cand.name)
        self.time.now += self.call_s
        outcome = self.outcomes[cand.name].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def plan(make_candidate: Callable[..., Candidate]) -> list[Candidate]:
    return [
        make_candidate("a", "small"),
        make_candidate("b", "small", provider="other"),
        make_candidate("c", "medium"),
    ]


async def run(plan: list[Candidate], script: Script, policy: RetryPolicy, **kw: Any) -> Any:
    breakers = kw.pop("breakers", None) or BreakerRegistry(clock=script.time.clock)
    return await run_with_fallbacks(
        plan,
        script,
        policy=policy,
        breakers=breakers,
        rng=FixedRandom(0.5),
        sleep=script.time.sleep,
        clock=script.time.clock,
        **kw,
    )


POLICY = RetryPolicy(
    max_attempts=5, base_s=1.0, cap_s=8.0, deadline_s=60.0, attempts_per_candidate=2
)


def test_backoff_is_jittered_exponential_capped_and_bounded() -> None:
    p = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=4.0, deadline_s=60.0)
    assert [p.backoff_s(n, retry_after_s=None, rng=FixedRandom(0.0)) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        2.0,
        2.0,
    ]
    assert p.backoff_s(2, retry_after_s=None, rng=FixedRandom(1.0)) == 2.0
    assert p.backoff_s(1, retry_after_s=7.0, rng=FixedRandom(0.5)) == 7.0
    assert p.backoff_s(1, retry_after_s=7.0, rng=FixedRandom(0.5), remaining_s=3.0) == 3.0


async def test_429_with_retry_after_then_success(plan: list[Candidate]) -> None:
    t = FakeTime()
    script = Script(t, {"a": [status(429, retry_after=3.0), "ok-a"]})
    result, attempts = await run(plan, script, POLICY)
    assert result == "ok-a"
    assert script.calls == ["a", "a"]
    assert t.sleeps == [3.0]
    assert [(a.model, a.outcome, a.status) for a in attempts] == [
        ("a", "error", 429),
        ("a", "ok", None),
    ]


async def test_500_retried_then_falls_back_to_next_provider(plan: list[Candidate]) -> None:
    t = FakeTime()
    script = Script(t, {"a": [status(500), status(502)], "b": ["ok-b"]}, call_s=0.25)
    result, attempts = await run(plan, script, POLICY)
    assert result == "ok-b"
    assert script.calls == ["a", "a", "b"]
    assert t.sleeps == [0.75]  # base 1.0: half fixed + 0.5 * half jitter
    assert [(a.model, a.provider, a.error_type, a.status) for a in attempts] == [
        ("a", "openai", "UpstreamStatusError", 500),
        ("a", "openai", "UpstreamStatusError", 502),
        ("b", "other", None, None),
    ]
    assert [a.ms for a in attempts] == [250.0, 250.0, 250.0]


async def test_timeout_and_connection_errors_are_retryable(plan: list[Candidate]) -> None:
    t = FakeTime()
    script = Script(
        t,
        {
            "a": [
                UpstreamTimeoutError("slow", provider="p"),
                UpstreamConnectionError("down", provider="p"),
            ],
            "b": [UpstreamConnectionError("down", provider="other"), "ok-b"],
        },
    )
    result, attempts = await run(plan, script, POLICY)
    assert result == "ok-b"
    assert script.calls == ["a", "a", "b", "b"]
    assert t.sleeps == [0.75, 0.75]
    assert [a.error_type for a in attempts] == [
        "UpstreamTimeoutError",
        "UpstreamConnectionError",
        "UpstreamConnectionError",
        None,
    ]


async def test_non_retryable_400_raised_at_once_without_fallback(plan: list[Candidate]) -> None:
    t = FakeTime()
    script = Script(t, {"a": [status(400)], "b": ["never"]})
    with pytest.raises(UpstreamStatusError) as info:
        await run(plan, script, POLICY)
    assert info.value.upstream_status == 400
    assert script.calls == ["a"]
    assert t.sleeps == []
    assert [(a.model, a.status) for a in attempts_of(info.value)] == [("a", 400)]


async def test_gives_up_at_max_attempts_raising_last_error(plan: list[Candidate]) -> None:
    t = FakeTime()
    policy = RetryPolicy(max_attempts=3, base_s=1.0, cap_s=8.0, deadline_s=60.0)
    script = Script(t, {"a": [status(500), status(503)], "b": [status(504), status(500)], "c": []})
    with pytest.raises(UpstreamStatusError) as info:
        await run(plan, script, policy)
    assert info.value.upstream_status == 504
    assert script.calls == ["a", "a", "b"]
    assert len(attempts_of(info.value)) == 3


async def test_retry_after_beyond_deadline_moves_on_without_sleeping(plan: list[Candidate]) -> None:
    t = FakeTime()
    policy = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=8.0, deadline_s=10.0)
    script = Script(t, {"a": [status(429, retry_after=30.0)], "b": ["ok-b"]})
    result, _ = await run(plan, script, policy)
    assert result == "ok-b"
    assert t.sleeps == []


async def test_deadline_stops_attempts(plan: list[Candidate]) -> None:
    t = FakeTime()
    policy = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=8.0, deadline_s=5.0)
    script = Script(
        t, {"a": [status(500), status(500)], "b": [status(500)], "c": ["late"]}, call_s=2.0
    )
    with pytest.raises(UpstreamStatusError):
        await run(plan, script, policy)
    # 2 s + 0.75 s backoff + 2 s leaves 0.25 s: b is tried once, then the deadline has passed
    assert script.calls == ["a", "a", "b"]
    assert t.sleeps == [0.75]


async def test_deadline_counts_from_the_given_start(plan: list[Candidate]) -> None:
    t = FakeTime()
    policy = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=8.0, deadline_s=5.0)
    script = Script(t, {"a": [status(500), status(500)], "b": ["late"]}, call_s=2.0)
    # The request arrived 3 s before the loop began: its first attempt ends on the deadline.
    with pytest.raises(UpstreamStatusError):
        await run(plan, script, policy, started=t.now - 3.0)
    assert script.calls == ["a"]
    assert t.sleeps == []


async def test_open_circuit_skips_candidate_and_failures_open_it(plan: list[Candidate]) -> None:
    t = FakeTime()
    breakers = BreakerRegistry(BreakerPolicy(failure_threshold=2, open_s=30.0), clock=t.clock)
    script = Script(t, {"a": [status(500), status(500)], "b": ["ok-b", "ok-b2"]})
    await run(plan, script, POLICY, breakers=breakers)
    assert breakers.states() == {"openai/a": "open", "other/b": "closed"}
    result, attempts = await run(plan, script, POLICY, breakers=breakers)
    assert result == "ok-b2"
    assert [(a.model, a.outcome) for a in attempts] == [("a", "skipped"), ("b", "ok")]


async def test_all_circuits_open_raises_connection_error(plan: list[Candidate]) -> None:
    t = FakeTime()
    breakers = BreakerRegistry(BreakerPolicy(failure_threshold=1), clock=t.clock)
    for c in plan:
        await breakers.record_failure(f"{c.provider}/{c.name}")
    script = Script(t, {})
    with pytest.raises(UpstreamConnectionError) as info:
        await run(plan, script, POLICY, breakers=breakers)
    assert script.calls == []
    assert [a.outcome for a in attempts_of(info.value)] == ["skipped"] * 3
