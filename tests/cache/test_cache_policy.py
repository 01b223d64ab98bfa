"""What may be looked up and stored."""

from __future__ import annotations

from typing import Any

import pytest

from cache.policy import CacheMode, cache_mode, is_cacheable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, CacheMode(lookup=True, store=True)),
        ({"x-spendgate-cache": "on"}, CacheMode(lookup=True, store=True)),
        ({"x-spendgate-cache": "off"}, CacheMode(lookup=False, store=False)),
        ({"X-Spendgate-Cache": " OFF "}, CacheMode(lookup=False, store=False)),
        ({"x-spendgate-cache": "refresh"}, CacheMode(lookup=False, store=True)),
        ({"x-spendgate-cache": "bogus"}, CacheMode(lookup=True, store=True)),
        ({"cache-control": "no-store"}, CacheMode(lookup=True, store=False)),
        ({"Cache-Control": "No-Cache"}, CacheMode(lookup=False, store=True)),
        ({"cache-control": "max-age=0"}, CacheMode(lookup=False, store=True)),
        ({"cache-control": "max-age=60"}, CacheMode(lookup=True, store=True)),
        ({"cache-control": "no-cache, no-store"}, CacheMode(lookup=False, store=False)),
        (
            {"x-spendgate-cache": "refresh", "cache-control": "no-store"},
            CacheMode(lookup=False, store=False),
        ),
        ({"x-spendgate-cache": "off", "cache-control": "max-age=60"}, CacheMode(False, False)),
    ],
)
def test_cache_mode_from_headers(headers: dict[str, str], expected: CacheMode) -> None:
    assert cache_mode(headers, enabled=True) == expected


def test_disabled_tenant_neither_looks_up_nor_stores() -> None:
    assert cache_mode({"x-spendgate-cache": "refresh"}, enabled=False) == CacheMode(False, False)


def completion(*reasons: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": reason,
                "logprobs": None,
            }
            for i, reason in enumerate(reasons)
        ],
        **extra,
    }


@pytest.mark.parametrize("reason", ["stop", "tool_calls", "function_call"])
def test_complete_answers_are_cacheable(reason: str) -> None:
    assert is_cacheable(completion(reason))


@pytest.mark.parametrize("reason", ["length", "content_filter", None, "weird"])
def test_incomplete_or_filtered_answers_are_not(reason: str | None) -> None:
    assert not is_cacheable(completion(reason))


def test_length_is_cacheable_only_when_configured() -> None:
    assert is_cacheable(completion("length"), cache_length=True)
    assert not is_cacheable(completion("content_filter"), cache_length=True)


def test_multiple_choices_need_every_one_complete() -> None:
    assert is_cacheable(completion("stop", "stop"), expected_choices=2)
    assert not is_cacheable(completion("stop", "length"), expected_choices=2)
    assert not is_cacheable(completion("stop"), expected_choices=2)


def test_errors_and_other_objects_are_not_cacheable() -> None:
    assert not is_cacheable({"error": {"message": "boom", "type": "server_error"}})
    assert not is_cacheable(completion("stop", error={"message": "x"}))
    assert not is_cacheable({**completion("stop"), "object": "chat.completion.chunk"})
    assert not is_cacheable({**completion("stop"), "choices": []})
    broken = completion("stop")
    del broken["choices"][0]["message"]
    assert not is_cacheable(broken)


def test_choice_indices_must_be_distinct() -> None:
    duplicated = completion("stop", "stop")
    duplicated["choices"][1]["index"] = 0
    assert not is_cacheable(duplicated)
