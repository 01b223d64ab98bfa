"""A cached answer is the same answer whichever way it was fetched and is served.

Whole then streamed: the stream is a proper replay (role chunk, content in
pieces, finish chunk, usage chunk only when asked for, ``[DONE]``) and spells
exactly the completion the SDK parsed the first time. Streamed then whole: the
stream the client saw is stored, and a later non-streaming request gets a
completion equal to it. Both directions are checked for text and tool calls.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.e2e_cache.answers import Answer, Frames, of_chunks, of_completion
from tests.e2e_cache.harness import MODEL, Proxy, tagged
from tests.support.servers import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def request_for(kind: str) -> dict[str, Any]:
    """A fresh request: plain text, or one the simulated model answers with a tool call."""
    if kind == "tools":
        text = tagged("What is the weather in Oslo right now?")
        return {
            "model": MODEL,
            "messages": [{"role": "user", "content": text}],
            "tools": [WEATHER_TOOL],
        }
    text = tagged("Explain in a sentence why the sky looks blue.")
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


def stream_args(include_usage: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"stream": True}
    if include_usage:
        args["stream_options"] = {"include_usage": True}
    return args


def check_shape(answer: Answer, kind: str) -> None:
    """The answer is the kind the simulated model gives: a tool call or text."""
    if kind == "tools":
        assert answer.finish_reason == "tool_calls"
        assert [c.name for c in answer.tool_calls] == ["get_weather"]
        assert '"location":"Oslo"' in answer.tool_calls[0].arguments
    else:
        assert answer.finish_reason == "stop"
        assert answer.content and "sky looks blue" in answer.content
        assert answer.tool_calls == ()


def raw_stream(proxy: Proxy, body: dict[str, Any]) -> tuple[httpx.Response, Frames]:
    """The stream as bytes on the wire, for checks the SDK hides (``[DONE]``)."""
    response = httpx.post(
        f"{proxy.openai_base_url}/chat/completions",
        json=body,
        headers={"authorization": "Bearer k-a"},
        timeout=20.0,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response, Frames.parse(response.text)


def check_framing(frames: Frames, *, kind: str, include_usage: bool) -> None:
    """OpenAI's stream shape: role first, pieces, an empty finish delta, usage, [DONE]."""
    assert frames.done, "the stream does not end with [DONE]"
    chunks = frames.chunks
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    with_choices = [c for c in chunks if c["choices"]]
    finish = with_choices[-1]["choices"][0]
    assert finish["finish_reason"] == ("tool_calls" if kind == "tools" else "stop")
    assert finish["delta"] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in with_choices[:-1])
    if kind == "tools":
        pieces = [c["choices"][0]["delta"].get("tool_calls") for c in with_choices]
        opening = next(p for p in pieces if p)[0]
        assert opening["id"] and opening["function"]["name"] == "get_weather"
        assert len([p for p in pieces if p]) >= 2, "tool arguments not streamed in pieces"
    else:
        assert len(frames.content_chunks()) >= 3, "content not streamed in several pieces"
    usage = frames.usage_chunks()
    if include_usage:
        assert len(usage) == 1 and usage[0] is chunks[-1], "usage must come last, once"
        assert usage[0]["choices"] == []
        assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    else:
        assert usage == []
        assert all(c["choices"] for c in chunks), "a usage-only chunk nobody asked for"


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("kind", ["text", "tools"])
def test_whole_answer_replays_as_the_same_stream(
    proxy: Proxy, fresh_sim: Simulator, kind: str, include_usage: bool
) -> None:
    body = request_for(kind)
    with proxy.client() as client:
        first = client.chat.completions.with_raw_response.create(**body)
        assert first.headers["x-spendgate-cache"] == "miss"
        original = of_completion(first.parse())
        check_shape(original, kind)

        replayed = client.chat.completions.with_raw_response.create(
            **body, **stream_args(include_usage)
        )
        assert replayed.headers["x-spendgate-cache"] == "exact"
        streamed = of_chunks(replayed.parse())

    expected = original if include_usage else replace(original, usage=None)
    assert streamed == expected
    response, frames = raw_stream(proxy, {**body, **stream_args(include_usage)})
    assert response.headers["x-spendgate-cache"] == "exact"
    check_framing(frames, kind=kind, include_usage=include_usage)
    assert fresh_sim.chat_calls() == 1


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("kind", ["text", "tools"])
def test_streamed_answer_is_served_whole(
    proxy: Proxy, fresh_sim: Simulator, kind: str, include_usage: bool
) -> None:
    body = request_for(kind)
    with proxy.client() as client:
        live = client.chat.completions.with_raw_response.create(
            **body, **stream_args(include_usage)
        )
        assert live.headers["x-spendgate-cache"] == "miss"
        streamed = of_chunks(live.parse())
        check_shape(streamed, kind)

        whole = client.chat.completions.with_raw_response.create(**body)
        assert whole.headers["x-spendgate-cache"] == "exact"
        served = of_completion(whole.parse())

    # The proxy always asks the upstream for usage, so the stored answer has it
    # even when this client's stream did not show it.
    assert served.usage is not None and served.usage["total_tokens"] > 0
    assert served == (streamed if include_usage else replace(streamed, usage=served.usage))
    assert fresh_sim.chat_calls() == 1
