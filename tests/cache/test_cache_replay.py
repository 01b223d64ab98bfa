"""Replaying stored completions as chunks, and assembling chunks into completions."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from cache.assemble import ChunkAssembler
from cache.replay import replay_chunks, split_text

TEXT = (
    "The capital of France is Paris. It has been the seat of government for "
    "centuries and sits on the Seine."
)


def stored_text(content: str = TEXT) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_123",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 25, "total_tokens": 37},
    }


def stored_tools() -> dict[str, Any]:
    completion = stored_text()
    completion["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris", "unit": "celsius"}',
                },
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"timezone": "Europe/Paris"}'},
            },
        ],
    }
    completion["choices"][0]["finish_reason"] = "tool_calls"
    return completion


def assemble(chunks: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any] | None:
    assembler = ChunkAssembler(**kwargs)
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.result()


def test_replay_has_openai_chunk_shape() -> None:
    completion = stored_text()
    chunks = list(replay_chunks(completion, include_usage=True))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk"
        for field in ("id", "created", "model", "system_fingerprint"):
            assert chunk[field] == completion[field]
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert first["usage"] is None
    contents = [c["choices"][0]["delta"]["content"] for c in middle]
    assert len(contents) > 3 and all(contents)
    assert "".join(contents) == TEXT
    assert all(piece.endswith((" ", ".")) for piece in contents[:-1])
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in [first, *middle])
    assert usage["choices"] == []
    assert usage["usage"] == completion["usage"]


def test_without_include_usage_there_is_no_usage_chunk_or_field() -> None:
    chunks = list(replay_chunks(stored_text(), include_usage=False))
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_replayed_text_reassembles_through_the_sdk_types() -> None:
    stored = stored_text()
    parsed = [
        ChatCompletionChunk.model_validate(c) for c in replay_chunks(stored, include_usage=True)
    ]
    rebuilt = assemble([p.model_dump(mode="json", exclude_unset=True) for p in parsed])
    assert ChatCompletion.model_validate(rebuilt) == ChatCompletion.model_validate(stored)


def test_replayed_tool_calls_reassemble_through_the_sdk_types() -> None:
    stored = stored_tools()
    chunks = list(replay_chunks(stored, include_usage=True, chunk_chars=8))
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    openings = [
        tc
        for p in parsed
        for ch in p.choices
        for tc in ch.delta.tool_calls or []
        if tc.id is not None
    ]
    assert [(t.index, t.id, t.type, t.function and t.function.name) for t in openings] == [
        (0, "call_1", "function", "get_weather"),
        (1, "call_2", "function", "get_time"),
    ]
    argument_pieces = [
        tc.function.arguments
        for p in parsed
        for ch in p.choices
        for tc in ch.delta.tool_calls or []
        if tc.id is None and tc.function is not None
    ]
    assert len(argument_pieces) > 2
    rebuilt = assemble([p.model_dump(mode="json", exclude_unset=True) for p in parsed])
    assert ChatCompletion.model_validate(rebuilt) == ChatCompletion.model_validate(stored)


def test_the_sdk_stream_accumulator_agrees_with_the_stored_answer() -> None:
    for stored, call_count in ((stored_text(), 0), (stored_tools(), 2)):
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
        for chunk in replay_chunks(stored, include_usage=True):
            list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
        final = state.get_final_completion()
        expected = ChatCompletion.model_validate(stored)
        assert final.choices[0].message.content == expected.choices[0].message.content
        got_calls = [c.model_dump() for c in final.choices[0].message.tool_calls or []]
        want_calls = [c.model_dump() for c in expected.choices[0].message.tool_calls or []]
        fields = ("name", "arguments")
        assert [(c["id"], [c["function"][f] for f in fields]) for c in got_calls] == [
            (c["id"], [c["function"][f] for f in fields]) for c in want_calls
        ]
        assert len(got_calls) == call_count
        assert final.usage == expected.usage


def test_multiple_choices_replay_by_index() -> None:
    stored = stored_text()
    second = json.loads(json.dumps(stored["choices"][0]))
    second["index"] = 1
    second["message"]["content"] = "Paris."
    stored["choices"].append(second)
    chunks = list(replay_chunks(stored, include_usage=True))
    indices = {c["choices"][0]["index"] for c in chunks if c["choices"]}
    assert indices == {0, 1}
    assert assemble(chunks, expected_choices=2) == stored
    assert assemble(chunks, expected_choices=3) is None


def test_token_logprobs_travel_with_their_content() -> None:
    stored = stored_text("Paris is the capital.")
    tokens = ["Paris", " is", " the", " capital", "."]
    stored["choices"][0]["logprobs"] = {
        "content": [
            {"token": t, "logprob": -0.5, "bytes": list(t.encode()), "top_logprobs": []}
            for t in tokens
        ],
        "refusal": None,
    }
    chunks = list(replay_chunks(stored, include_usage=True))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    carrying = [c for c in chunks if c["choices"] and c["choices"][0]["logprobs"]]
    for chunk in carrying:
        choice = chunk["choices"][0]
        assert choice["delta"]["content"] == "".join(
            t["token"] for t in choice["logprobs"]["content"]
        )
    assert assemble(chunks) == stored


def test_assembler_joins_an_upstream_style_stream() -> None:
    base = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "m",
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }

    stream = [
        chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": ""},
                    }
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "lookup", "arguments": ' "x"}'}}]}),
        chunk({}, "tool_calls"),
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
    ]
    result = assemble(stream)
    assert result is not None
    message = result["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]
    assert result["usage"]["total_tokens"] == 7
    assert result["object"] == "chat.completion"
    ChatCompletion.model_validate(result)


def test_truncated_stream_assembles_to_none() -> None:
    chunks = list(replay_chunks(stored_text(), include_usage=True))
    finish_at = next(
        i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]
    )
    assert assemble(chunks[:finish_at]) is None
    assert assemble([]) is None


def test_split_text_keeps_every_character_and_bounds_long_runs() -> None:
    text = "  lead " + "x" * 100 + " tail\n\nend "
    pieces = split_text(text, 16)
    assert "".join(pieces) == text
    assert max(len(p) for p in pieces) <= 32
    assert split_text("", 16) == []


# Property tests: replay and assembly are inverse to each other.

_text = st.text(max_size=80)
_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)


@st.composite
def _logprobs(draw: st.DrawFn, content: str | None) -> dict[str, Any] | None:
    choice = draw(st.sampled_from(["none", "aligned", "unaligned"]))
    if choice == "none" or content is None:
        return None
    if choice == "aligned" and content:
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(content) - 1)), max_size=6)))
        bounds = [0, *[c for c in cuts if c < len(content)], len(content)]
        tokens = [content[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    else:
        tokens = draw(st.lists(_text, min_size=1, max_size=3))
    entries = [
        {
            "token": t,
            "logprob": draw(st.floats(-20, 0)),
            "bytes": list(t.encode()),
            "top_logprobs": [],
        }
        for t in tokens
    ]
    return {"content": entries, "refusal": None}


@st.composite
def completions(draw: st.DrawFn) -> dict[str, Any]:
    choices = []
    for index in range(draw(st.integers(1, 3))):
        message: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | _text)}
        if draw(st.booleans()):
            message["refusal"] = draw(st.none() | _text)
        if draw(st.booleans()):
            message["tool_calls"] = [
                {
                    "id": f"call_{draw(_ident)}",
                    "type": "function",
                    "function": {"name": draw(_ident), "arguments": draw(_text)},
                }
                for _ in range(draw(st.integers(1, 3)))
            ]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": draw(_logprobs(message["content"])),
                "finish_reason": draw(
                    st.sampled_from(["stop", "tool_calls", "length", "content_filter"])
                ),
            }
        )
    prompt, done = draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000))
    return {
        "id": f"chatcmpl-{draw(_ident)}",
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(_ident),
        "system_fingerprint": draw(st.none() | _ident),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": done,
            "total_tokens": prompt + done,
        },
    }


@settings(max_examples=150, deadline=None)
@given(completions(), st.integers(1, 40))
def test_assemble_of_replay_is_the_stored_completion(
    stored: dict[str, Any], chunk_chars: int
) -> None:
    chunks = list(replay_chunks(stored, include_usage=True, chunk_chars=chunk_chars))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert assemble(chunks) == stored


@st.composite
def upstream_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Chunk streams cut at arbitrary points, the way a provider might send them."""
    header = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 7, "model": "m"}
    stream: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, 2))):

        def emit(delta: dict[str, Any], finish: str | None = None, i: int = index) -> None:
            stream.append(
                {**header, "choices": [{"index": i, "delta": delta, "finish_reason": finish}]}
            )

        emit({"role": "assistant", "content": ""})
        for piece in draw(st.lists(st.text(min_size=1, max_size=10), max_size=5)):
            emit({"content": piece})
        for call in range(draw(st.integers(0, 2))):
            emit(
                {
                    "tool_calls": [
                        {
                            "index": call,
                            "id": f"call_{call}",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        }
                    ]
                }
            )
            for piece in draw(st.lists(st.text(min_size=1, max_size=10), max_size=4)):
                emit({"tool_calls": [{"index": call, "function": {"arguments": piece}}]})
        emit({}, draw(st.sampled_from(["stop", "tool_calls"])))
    return stream


@settings(max_examples=100, deadline=None)
@given(upstream_streams())
def test_replay_of_an_assembled_stream_is_equivalent(stream: list[dict[str, Any]]) -> None:
    assembled = assemble(stream)
    assert assembled is not None
    ChatCompletion.model_validate(assembled)
    replayed = list(replay_chunks(assembled, include_usage=False))
    assert assemble(replayed) == assembled
    for index in {c["choices"][0]["index"] for c in stream}:

        def text(chunks: list[dict[str, Any]], i: int = index) -> str:
            return "".join(
                c["choices"][0]["delta"].get("content") or ""
                for c in chunks
                if c["choices"][0]["index"] == i
            )

        assert text(replayed) == text(stream)
