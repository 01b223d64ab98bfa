"""The official openai SDK against a real proxy serving the simulated provider.

Answers are compared with what the simulator says when asked directly, so the
proxy's relaying and translation are checked against an independent source.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.e2e.harness import (
    CLAUDE_MODEL,
    OPENAI_MODEL,
    Proxy,
    direct_text,
    raw_stream,
    unique,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e

COST_HEADERS = ("x-spendgate-cost-usd", "x-spendgate-baseline-usd", "x-spendgate-savings-usd")


@pytest.mark.parametrize(
    ("model", "provider"), [(OPENAI_MODEL, "openai"), (CLAUDE_MODEL, "anthropic")]
)
def test_sync_completion_matches_the_provider_and_carries_headers(
    client: openai.OpenAI, sim: Simulator, model: str, provider: str
) -> None:
    prompt = unique("Say something about sync completions.")
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == direct_text(sim, model, prompt)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == model
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    headers = raw.headers
    assert headers["x-spendgate-request-id"].startswith("sg-")
    assert headers["x-spendgate-model"] == model
    assert headers["x-spendgate-provider"] == provider
    assert headers["x-spendgate-cache"] == "miss"
    assert model in headers["x-spendgate-route-reason"]
    for name in COST_HEADERS:
        assert float(headers[name]) >= 0  # a decimal string, present on every answer
    assert float(headers["x-spendgate-cost-usd"]) > 0


@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
def test_sync_stream_assembles_to_the_provider_answer(
    client: openai.OpenAI, sim: Simulator, model: str
) -> None:
    prompt = unique("Stream a reply, please.")
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    )
    pieces: list[str] = []
    finish: list[str] = []
    usage_chunks = 0
    with stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage_chunks += 1
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish.append(choice.finish_reason)

    assert len(pieces) > 1  # streamed in pieces, not one lump
    assert "".join(pieces) == direct_text(sim, model, prompt)
    assert finish == ["stop"]
    assert usage_chunks == 0  # not asked for with stream_options


@pytest.mark.anyio
@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
async def test_async_completion_and_stream(proxy: Proxy, sim: Simulator, model: str) -> None:
    prompt = unique("Async, please.")
    async with openai.AsyncOpenAI(
        base_url=proxy.openai_base_url, api_key="any", max_retries=0
    ) as aclient:
        completion = await aclient.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
        streamed_prompt = unique("Async stream, please.")
        stream = await aclient.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": streamed_prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage: Any = None
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                pieces.extend(c.delta.content for c in chunk.choices if c.delta.content)

    assert completion.choices[0].message.content == direct_text(sim, model, prompt)
    assert "".join(pieces) == direct_text(sim, model, streamed_prompt)
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0


@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
def test_stream_usage_chunk_carries_the_spendgate_object(proxy: Proxy, model: str) -> None:
    response, data = raw_stream(
        proxy,
        {
            "model": model,
            "messages": [{"role": "user", "content": unique("Count my tokens.")}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1
    usage_chunk = usage_chunks[0]
    assert usage_chunk is chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] > 0
    assert usage_chunk["usage"]["completion_tokens"] > 0
    spendgate = usage_chunk["spendgate"]
    assert spendgate["request_id"] == response.headers["x-spendgate-request-id"]
    assert float(spendgate["cost_usd"]) > 0
    for key in ("baseline_usd", "savings_usd"):
        assert float(spendgate[key]) >= 0


@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
def test_stream_without_include_usage_has_no_usage_chunk(proxy: Proxy, model: str) -> None:
    response, data = raw_stream(
        proxy,
        {
            "model": model,
            "messages": [{"role": "user", "content": unique("No usage, thanks.")}],
            "stream": True,
        },
    )

    assert response.status_code == 200
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks
    assert all(not c.get("usage") and "spendgate" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def weather_question() -> str:
    return unique("What is the weather in Lyon today?")


@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
def test_tool_calls_streamed_and_not_then_a_tool_result_turn(
    client: openai.OpenAI, model: str
) -> None:
    question = weather_question()
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        tools=[WEATHER_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments["location"] == "Lyon"

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": weather_question()}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    streamed: dict[int, dict[str, str]] = {}
    finish: list[str] = []
    with stream:
        for chunk in stream:
            for c in chunk.choices:
                if c.finish_reason:
                    finish.append(c.finish_reason)
                for delta in c.delta.tool_calls or ():
                    entry = streamed.setdefault(delta.index, {"id": "", "name": "", "args": ""})
                    entry["id"] += delta.id or ""
                    if delta.function is not None:
                        entry["name"] += delta.function.name or ""
                        entry["args"] += delta.function.arguments or ""
    assert finish == ["tool_calls"]
    assert list(streamed) == [0]
    assert streamed[0]["name"] == "get_weather"
    assert streamed[0]["id"]
    assert json.loads(streamed[0]["args"]) == arguments

    tool_output = unique("Sunny and 21 degrees")
    follow_up = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": call.function.arguments,
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": tool_output},
        ],
    )
    answer = follow_up.choices[0]
    assert answer.finish_reason == "stop"
    assert not answer.message.tool_calls
    # The simulator quotes the last turn's text: the tool result reached it as
    # that turn (a ``tool_result`` block, for the Anthropic upstream).
    assert answer.message.content is not None
    assert tool_output in answer.message.content
