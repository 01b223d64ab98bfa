"""Token counts against the real rank files, checked with fixed known values.

The message counts 129 (cl100k_base) and 124 (o200k_base) are the results
OpenAI's token-counting guide publishes for its example conversation.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]

from pricing.tokens import (
    ENCODINGS,
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW,
    TokenCount,
    TokenCounter,
    estimate_text_tokens,
)

GUIDE_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_known_text_counts(warm_counter: TokenCounter, encoding: str) -> None:
    assert warm_counter.count_text("hello world", encoding=encoding) == TokenCount(2, "tiktoken")
    assert warm_counter.count_text("tiktoken is great!", encoding=encoding) == TokenCount(
        6, "tiktoken"
    )
    assert warm_counter.count_text("", encoding=encoding) == TokenCount(0, "tiktoken")


@pytest.mark.parametrize(("encoding", "expected"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_openai_guide_message_counts(
    warm_counter: TokenCounter, encoding: str, expected: int
) -> None:
    assert warm_counter.count_messages(GUIDE_MESSAGES, encoding=encoding) == TokenCount(
        expected, "tiktoken"
    )


def test_special_token_text_is_counted_as_ordinary_text(warm_counter: TokenCounter) -> None:
    count = warm_counter.count_text("<|endoftext|>", encoding="cl100k_base")
    assert count.source == "tiktoken" and count.tokens > 1


def test_content_parts_images_and_tool_calls(warm_counter: TokenCounter) -> None:
    enc = "o200k_base"

    def text(s: str) -> int:
        return warm_counter.count_text(s, encoding=enc).tokens

    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/b.png", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    call_json = json.dumps(messages[1]["tool_calls"][0], separators=(",", ":"))
    expected = (
        3  # reply priming
        + 3
        + text("user")
        + 2
        + IMAGE_TOKENS
        + IMAGE_TOKENS_LOW  # "hello world" is 2
        + 3
        + text("assistant")
        + text(call_json)
        + 3
        + text("tool")
        + text("call_1")
        + text("18C")
    )
    assert IMAGE_TOKENS == 765 and IMAGE_TOKENS_LOW == 85
    assert warm_counter.count_messages(messages, encoding=enc) == TokenCount(expected, "tiktoken")


def test_tools_count_their_json(warm_counter: TokenCounter) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    compact = json.dumps(tools, separators=(",", ":"))
    expected = warm_counter.count_text(compact, encoding="o200k_base").tokens
    assert expected > 10
    assert warm_counter.count_tools(tools, encoding="o200k_base") == TokenCount(
        expected, "tiktoken"
    )
    assert warm_counter.count_tools([], encoding="o200k_base").tokens == 0
    assert warm_counter.count_tools(None, encoding="o200k_base").tokens == 0


def test_counting_is_estimated_until_warmed(tiktoken_dir: Path) -> None:
    counter = TokenCounter(tiktoken_dir)
    assert counter.count_text("hello world", encoding="o200k_base") == TokenCount(3, "estimated")
    assert counter.status()["o200k_base"] == "not loaded"
    counter.warm()
    assert counter.count_text("hello world", encoding="o200k_base") == TokenCount(2, "tiktoken")


def test_missing_directory_falls_back_to_estimates(tmp_path: Path) -> None:
    counter = TokenCounter(tmp_path / "nowhere")
    status = counter.warm()
    assert all(reason != "loaded" for reason in status.values())
    # 11 bytes -> ceil(11 / 4) = 3
    assert counter.count_text("hello world", encoding="cl100k_base") == TokenCount(3, "estimated")


def test_no_directory_falls_back_to_estimates() -> None:
    counter = TokenCounter(None)
    assert counter.warm()["o200k_base"] == "no tiktoken directory configured"
    # 3 priming + 3 framing + "user" ceil(4/4)=1 + "abcdefghi" ceil(9/4)=3 = 10
    messages = [{"role": "user", "content": "abcdefghi"}]
    assert counter.count_messages(messages, encoding="o200k_base") == TokenCount(10, "estimated")


def test_bad_hash_falls_back_to_estimates(tmp_path: Path, tiktoken_dir: Path) -> None:
    plain = gzip.decompress((tiktoken_dir / "cl100k_base.tiktoken.gz").read_bytes())
    # One extra rank: a different file, which must be refused.
    (tmp_path / "cl100k_base.tiktoken").write_bytes(plain + b"IQ== 100256\n")
    counter = TokenCounter(tmp_path)
    status = counter.warm()
    assert "sha256" in status["cl100k_base"]
    assert status["o200k_base"] != "loaded"  # not present in tmp_path
    assert counter.count_text("hello world", encoding="cl100k_base") == TokenCount(3, "estimated")


def test_gzipped_rank_files_load_and_a_corrupt_one_is_refused(
    tmp_path: Path, tiktoken_dir: Path
) -> None:
    gzipped = (tiktoken_dir / "cl100k_base.tiktoken.gz").read_bytes()
    (tmp_path / "cl100k_base.tiktoken.gz").write_bytes(gzipped)
    (tmp_path / "o200k_base.tiktoken.gz").write_bytes(gzipped[: len(gzipped) // 2])
    counter = TokenCounter(tmp_path)
    status = counter.warm()
    assert status["cl100k_base"] == "loaded"
    assert status["o200k_base"].startswith(str(tmp_path / "o200k_base.tiktoken.gz"))
    assert counter.count_text("hello world", encoding="cl100k_base") == TokenCount(2, "tiktoken")


def test_unknown_encoding_is_estimated(warm_counter: TokenCounter) -> None:
    assert warm_counter.count_text("hello world", encoding="p50k_base").source == "estimated"


@pytest.mark.parametrize(("text", "expected"), [("", 0), ("abcd", 1), ("abcde", 2), ("é", 1)])
def test_estimate_is_ceil_of_utf8_bytes_over_four(text: str, expected: int) -> None:
    assert estimate_text_tokens(text) == expected


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_specs_match_tiktokens_own_definitions(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # tiktoken builds these after a download; stub the download to read its constants
    def no_download(url: str, expected_hash: str) -> dict[bytes, int]:
        assert expected_hash == ENCODINGS[name].sha256
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", no_download)
    upstream = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert upstream["pat_str"] == ENCODINGS[name].pat_str
    assert upstream["special_tokens"] == dict(ENCODINGS[name].special_tokens)
