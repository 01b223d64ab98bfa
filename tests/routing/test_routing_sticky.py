"""The stickiness tracker: which model served a conversation's previous call."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from routing.select import StickinessTracker, StickyInfo, conversation_key, previous_prompt

pytestmark = pytest.mark.anyio

SYSTEM = {"role": "system", "content": "You are terse."}
U1 = {"role": "user", "content": "What is Rust?"}
A1 = {"role": "assistant", "content": "A systems language."}
U2 = {"role": "user", "content": "And Go?"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_previous_prompt_drops_new_input_and_last_answer() -> None:
    assert previous_prompt([SYSTEM, U1, A1, U2]) == [SYSTEM, U1]
    tool_call = {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}
    tool = {"role": "tool", "content": "42", "tool_call_id": "1"}
    assert previous_prompt([SYSTEM, U1, tool_call, tool]) == [SYSTEM, U1]
    assert previous_prompt([SYSTEM, U1]) == []


def test_conversation_key_depends_on_tenant_and_texts() -> None:
    base = conversation_key("t1", [SYSTEM, U1])
    assert base == conversation_key(
        "t1",
        [dict(SYSTEM), {"role": "user", "content": [{"type": "text", "text": "What is Rust?"}]}],
    )
    assert base != conversation_key("t2", [SYSTEM, U1])
    assert base != conversation_key("t1", [SYSTEM, U2])


async def _roundtrip(tracker: StickinessTracker, clock: Clock) -> list[Any]:
    seen: list[Any] = [await tracker.lookup("t1", [SYSTEM, U1])]
    await tracker.record("t1", [SYSTEM, U1], model_name="gpt-4o", prompt_tokens=120)
    seen.append(await tracker.lookup("t1", [SYSTEM, U1, A1, U2]))
    seen.append(await tracker.lookup("t2", [SYSTEM, U1, A1, U2]))
    clock.now += 11
    return seen


async def test_memory_tracker_remembers_until_ttl() -> None:
    clock = Clock()
    tracker = StickinessTracker(ttl_s=10, clock=clock)
    assert await _roundtrip(tracker, clock) == [None, StickyInfo("gpt-4o", 120), None]
    assert await tracker.lookup("t1", [SYSTEM, U1, A1, U2]) is None


async def test_memory_tracker_is_bounded() -> None:
    tracker = StickinessTracker(max_entries=2)
    for i in range(3):
        await tracker.record(
            "t", [{"role": "user", "content": str(i)}], model_name="m", prompt_tokens=1
        )
    assert await tracker.lookup("t", [{"role": "user", "content": "0"}, A1, U2]) is None
    assert await tracker.lookup("t", [{"role": "user", "content": "2"}, A1, U2]) == StickyInfo(
        "m", 1
    )


@pytest.mark.redis
async def test_redis_tracker_is_shared_and_expires(redis_client: Redis, key_prefix: str) -> None:
    clock = Clock()
    writer = StickinessTracker(ttl_s=10, redis=redis_client, key_prefix=key_prefix, clock=clock)
    reader = StickinessTracker(ttl_s=10, redis=redis_client, key_prefix=key_prefix, clock=clock)
    await writer.record("t1", [SYSTEM, U1], model_name="claude-sonnet", prompt_tokens=300)
    assert await reader.lookup("t1", [SYSTEM, U1, A1, U2]) == StickyInfo("claude-sonnet", 300)
    [key] = [k async for k in redis_client.scan_iter(match=key_prefix + "*")]
    assert 0 < await redis_client.ttl(key) <= 10
