"""Anthropic Messages streams translated into OpenAI chat.completion.chunk streams."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import pytest
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from pricing.usage import Usage
from proxy.errors import UpstreamProtocolError, UpstreamStatusError, is_retryable
from proxy.providers.anthropic import AnthropicProvider
from proxy.providers.anthropic_stream import AnthropicStreamTranslator
from proxy.providers.base import ProviderSettings
from proxy.providers.sse import SSEDecoder, SSEEvent

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"
KEY = "sk-ant-api03-stream-test-key-abcdef"
SEEDS = range(8)


def translator(model: str = "gpt-4o") -> AnthropicStreamTranslator:
    settings = ProviderSettings(
        name="anthropic", type="anthropic", base_url="https://api.anthropic.com", api_key=KEY
    )
    return AnthropicProvider(settings).stream_translator(model=model)


def random_pieces(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(data):
        size = rng.randint(1, 23)
        pieces.append(data[at : at + size])
        at += size
    return pieces


@dataclass
class Assembled:
    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    role: str | None = None
    text: str = ""
    tools: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: list[str] = field(default_factory=list)


def run(stream: AnthropicStreamTranslator, data: bytes, seed: int) -> Assembled:
    """Decode ``data`` in random pieces, translate, and validate every chunk."""
    decoder = SSEDecoder()
    out = Assembled()
    for piece in random_pieces(data, seed):
        for event in decoder.feed(piece):
            for item in stream.feed(event):
                assert item.raw is None
                out.chunks.append(ChatCompletionChunk.model_validate(item.chunk))
    assert decoder.flush() == []
    for chunk in out.chunks:
        for choice in chunk.choices:
            delta = choice.delta
            out.role = delta.role or out.role
            out.text += delta.content or ""
            for call in delta.tool_calls or []:
                slot = out.tools.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] = call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            if choice.finish_reason:
                out.finish.append(choice.finish_reason)
    return out


def fixture(name: str, newline: bytes = b"\n") -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\n", newline)


def test_fixture_events_are_valid_anthropic_events() -> None:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    for name in ("text_stream.sse", "tool_use_stream.sse"):
        events = SSEDecoder().feed(fixture(name))
        for event in events:
            if event.event != "ping":
                assert adapter.validate_json(event.data).type == event.event


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_text_stream(seed: int, newline: bytes) -> None:
    stream = translator()
    out = run(stream, fixture("text_stream.sse", newline), seed)
    assert out.role == "assistant"
    assert out.text == "Here is a haïku — snow on the pines 🌲\nsilence"
    assert out.tools == {}
    assert out.finish == ["stop"]
    assert {(c.id, c.created, c.model) for c in out.chunks} == {
        ("chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U", out.chunks[0].created, "gpt-4o")
    }
    last = out.chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.prompt_tokens_details is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (1702, 15)
    assert last.usage.total_tokens == 1717
    assert last.usage.prompt_tokens_details.cached_tokens == 1200
    assert last.usage.prompt_tokens_details.cache_write_tokens == 30
    assert all(c.usage is None for c in out.chunks[:-1])
    assert stream.finished
    assert stream.usage == Usage(
        prompt_tokens=1702,
        completion_tokens=15,
        cached_prompt_tokens=1200,
        cache_creation_tokens=30,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_tool_use_stream(seed: int) -> None:
    stream = translator(model="my-alias")
    out = run(stream, fixture("tool_use_stream.sse"), seed)
    assert out.text == "Checking both cities."
    # Anthropic block indexes 2 and 3 (after thinking and text) are tool calls 0 and 1.
    assert sorted(out.tools) == [0, 1]
    assert out.tools[0]["id"] == "toolu_01KFbKqPYSuAKujiL6mTfzYA"
    assert out.tools[1]["id"] == "toolu_01B7pq2k3n4m5l6k7j8h9g0f"
    assert {t["name"] for t in out.tools.values()} == {"get_weather"}
    assert json.loads(out.tools[0]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    assert json.loads(out.tools[1]["arguments"]) == {"location": "Paris, France"}
    assert out.finish == ["tool_calls"]
    assert {c.model for c in out.chunks} == {"my-alias"}
    usage = out.chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (849, 112)
    assert stream.usage == Usage(prompt_tokens=849, completion_tokens=112)
    assert stream.finished


def test_tool_call_start_chunk_shape() -> None:
    stream = translator()
    start = {
        "type": "content_block_start",
        "index": 4,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
    }
    [chunk] = stream.feed(SSEEvent(json.dumps(start), "content_block_start"))
    assert chunk.chunk["choices"][0]["delta"] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": ""},
            }
        ]
    }
    delta = {
        "type": "content_block_delta",
        "index": 4,
        "delta": {"type": "input_json_delta", "partial_json": '{"q": 1'},
    }
    [chunk] = stream.feed(SSEEvent(json.dumps(delta), "content_block_delta"))
    assert chunk.chunk["choices"][0]["delta"] == {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"q": 1'}}]
    }


def test_usage_arrives_in_two_parts() -> None:
    stream = translator()
    assert stream.usage is None and not stream.finished
    stream.feed(
        SSEEvent(
            json.dumps(
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "usage": {
                            "input_tokens": 10,
                            "cache_read_input_tokens": 5,
                            "output_tokens": 1,
                        },
                    },
                }
            )
        )
    )
    assert stream.usage == Usage(prompt_tokens=15, completion_tokens=1, cached_prompt_tokens=5)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"output_tokens": 40},
    }
    [finish] = stream.feed(SSEEvent(json.dumps(delta)))
    assert finish.chunk["choices"][0]["finish_reason"] == "length"
    assert stream.usage == Usage(prompt_tokens=15, completion_tokens=40, cached_prompt_tokens=5)
    assert not stream.finished


def test_message_stop_without_a_stop_reason_still_finishes() -> None:
    stream = translator()
    stream.feed(
        SSEEvent(
            '{"type":"message_start","message":{"id":"msg_2","usage":{"input_tokens":3,"output_tokens":0}}}'
        )
    )
    chunks = stream.feed(SSEEvent('{"type":"message_stop"}', "message_stop"))
    assert [c.chunk["choices"][0]["finish_reason"] for c in chunks[:1]] == ["stop"]
    assert chunks[1].chunk["choices"] == []
    assert chunks[1].chunk["usage"]["prompt_tokens"] == 3
    assert stream.finished


@pytest.mark.parametrize(
    "data",
    [
        '{"type": "ping"}',
        '{"type":"content_block_stop","index":0}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}',
        '{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}',
        '{"type":"some_future_event","payload":1}',
    ],
)
def test_events_without_client_content_give_no_chunks(data: str) -> None:
    assert translator().feed(SSEEvent(data)) == []


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_error_event_raises_after_the_partial_answer(seed: int) -> None:
    stream = translator()
    decoder = SSEDecoder()
    texts: list[str] = []
    with pytest.raises(UpstreamStatusError) as caught:
        for piece in random_pieces(fixture("error_stream.sse"), seed):
            for event in decoder.feed(piece):
                for item in stream.feed(event):
                    texts.append(item.chunk["choices"][0]["delta"].get("content", ""))
    assert "".join(texts) == "Partial"
    error = caught.value
    assert error.provider == "anthropic"
    assert error.upstream_status == 529
    assert error.message.startswith("anthropic: Overloaded")
    assert "overloaded_error" in error.message
    assert is_retryable(error)
    assert KEY not in str(error)
    assert not stream.finished


@pytest.mark.parametrize(
    ("anthropic_type", "status", "retryable"),
    [
        ("overloaded_error", 529, True),
        ("api_error", 500, True),
        ("rate_limit_error", 429, True),
        ("invalid_request_error", 400, False),
        ("request_too_large", 413, False),
        ("something_new_error", 500, True),
    ],
)
def test_error_event_types(anthropic_type: str, status: int, retryable: bool) -> None:
    data = json.dumps({"type": "error", "error": {"type": anthropic_type, "message": "boom"}})
    with pytest.raises(UpstreamStatusError) as caught:
        translator().feed(SSEEvent(data, "error"))
    assert caught.value.upstream_status == status
    assert is_retryable(caught.value) is retryable


@pytest.mark.parametrize("data", ["not json", "[1, 2]", ""])
def test_unreadable_events_raise_protocol_errors(data: str) -> None:
    with pytest.raises(UpstreamProtocolError) as caught:
        translator().feed(SSEEvent(data, "content_block_delta"))
    assert caught.value.provider == "anthropic"


def test_json_delta_for_an_unknown_block_is_a_protocol_error() -> None:
    delta = {
        "type": "content_block_delta",
        "index": 9,
        "delta": {"type": "input_json_delta", "partial_json": "{"},
    }
    with pytest.raises(UpstreamProtocolError):
        translator().feed(SSEEvent(json.dumps(delta)))


@pytest.mark.parametrize(
    ("name", "content", "finish", "tool_names"),
    [
        ("text_stream.sse", "Here is a haïku — snow on the pines 🌲\nsilence", "stop", []),
        ("tool_use_stream.sse", "Checking both cities.", "tool_calls", ["get_weather"] * 2),
    ],
)
def test_openai_sdk_accumulates_the_stream(
    name: str, content: str, finish: str, tool_names: list[str]
) -> None:
    state = ChatCompletionStreamState()
    stream = translator()
    for event in SSEDecoder().feed(fixture(name)):
        for item in stream.feed(event):
            state.handle_chunk(ChatCompletionChunk.model_validate(item.chunk))
    final = state.get_final_completion()
    assert final.choices[0].message.content == content
    assert final.choices[0].finish_reason == finish
    calls = final.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls] == tool_names
    assert all(json.loads(call.function.arguments) for call in calls)
    assert final.usage is not None and final.usage.total_tokens > 0
