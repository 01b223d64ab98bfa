"""The simulated provider, driven by the official OpenAI and Anthropic SDKs.

Wire shapes are checked against the SDKs' own pydantic models (strict
validation of every streamed event), so a drift from the real APIs fails here.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import openai
import pytest
from anthropic.types import RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from proxy.demo.simulator import SimulatorHandle, run_simulator
from proxy.demo.simulator.reply import estimate_prompt_tokens, reply_words
from proxy.demo.simulator.runner import bind_socket
from proxy.providers.sse import SSEDecoder, SSEEvent

REPO = Path(__file__).resolve().parents[2]
WEATHER_TOOL_OPENAI: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
WEATHER_TOOL_ANTHROPIC: Any = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorHandle]:
    async with run_simulator(timeout_s=30.0) as handle:
        yield handle


def oai(sim: SimulatorHandle, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=sim.openai_base_url, api_key="sk-test", max_retries=0, **kwargs
    )


def claude(sim: SimulatorHandle) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-ant-test", max_retries=0)


async def raw_events(response: httpx.Response) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    async for chunk in response.aiter_bytes():
        events.extend(decoder.feed(chunk))
    return events + decoder.flush()


async def wait_for_cancelled(sim: SimulatorHandle, expected: int) -> None:
    # The server notices a client's departure on its own schedule.
    with anyio.fail_after(10):
        while sim.stats()["cancelled"] < expected:
            await anyio.sleep(0.02)


# --- OpenAI chat completions -------------------------------------------------


@pytest.mark.anyio
async def test_chat_completion_answers_deterministically_with_usage(sim: SimulatorHandle) -> None:
    prompt = "Explain the difference between a list and a tuple in Python, briefly."
    messages: Any = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": prompt},
    ]
    async with oai(sim) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=messages
        )
        first = raw.parse()
        again = await client.chat.completions.create(model="gpt-4o", messages=messages)

    assert raw.headers["x-simulated"] == "true"
    assert first.object == "chat.completion"
    assert first.system_fingerprint == "simulated"
    assert first.model == "gpt-4o"
    text = first.choices[0].message.content
    assert text is not None and text.startswith("Simulated answer to: " + prompt[:60])
    assert text == again.choices[0].message.content
    assert first.id != again.id
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert first.usage.prompt_tokens == (len("Be terse.") + len(prompt)) // 4 + 1
    assert first.usage.completion_tokens == len(text.split())
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


@pytest.mark.anyio
async def test_max_tokens_truncates_with_finish_reason_length(sim: SimulatorHandle) -> None:
    async with oai(sim) as client:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "Simulated answer to:"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


@pytest.mark.anyio
async def test_stream_without_include_usage_sends_no_usage_chunk(sim: SimulatorHandle) -> None:
    async with oai(sim) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hello"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert len(chunks) > 5
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.split() == list(reply_words("Hello"))


@pytest.mark.anyio
async def test_stream_with_include_usage_ends_with_usage_only_chunk(sim: SimulatorHandle) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Count the chunks"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        httpx.AsyncClient(headers={"authorization": "Bearer k"}) as http,
        http.stream("POST", sim.openai_base_url + "/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await raw_events(response)

    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk, strict=True)
        assert "usage" in chunk
    *content_chunks, usage_chunk = chunks
    assert usage_chunk["choices"] == []
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in content_chunks)
    words = len(reply_words("Count the chunks"))
    assert usage_chunk["usage"]["completion_tokens"] == words
    assert usage_chunk["usage"]["prompt_tokens"] == estimate_prompt_tokens(["Count the chunks"])


@pytest.mark.anyio
async def test_tool_call_when_tools_offered_and_weather_asked(sim: SimulatorHandle) -> None:
    messages: Any = [{"role": "user", "content": "What is the weather in San Francisco?"}]
    async with oai(sim) as client:
        reply = await client.chat.completions.create(
            model="gpt-4o", messages=messages, tools=[WEATHER_TOOL_OPENAI]
        )
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=messages, tools=[WEATHER_TOOL_OPENAI], stream=True
        )
        chunks = [chunk async for chunk in stream]
        no_tools = await client.chat.completions.create(model="gpt-4o", messages=messages)

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["location"] == "San Francisco"

    opening = (chunks[0].choices[0].delta.tool_calls or [])[0]
    assert (opening.index, opening.id, opening.type) == (0, calls[0].id, "function")
    assert opening.function is not None and opening.function.name == "get_weather"
    pieces = [(c.choices[0].delta.tool_calls or [])[0].function for c in chunks[1:-1]]
    assert len(pieces) > 1
    assert "".join(p.arguments or "" for p in pieces if p) == calls[0].function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert no_tools.choices[0].finish_reason == "stop"


@pytest.mark.anyio
async def test_openai_requests_without_a_key_get_401(sim: SimulatorHandle) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as http:
        response = await http.post(sim.openai_base_url + "/chat/completions", json=body)
        bad = await http.post(
            sim.openai_base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": []},
            headers={"authorization": "Bearer k"},
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


# --- embeddings, models, Responses API --------------------------------------


@pytest.mark.anyio
async def test_embeddings_are_deterministic_unit_vectors(sim: SimulatorHandle) -> None:
    async with oai(sim) as client:
        first = await client.embeddings.create(
            model="text-embedding-3-small", input=["alpha", "beta"], dimensions=32
        )
        again = await client.embeddings.create(
            model="text-embedding-3-small", input="alpha", dimensions=32, encoding_format="float"
        )
        listed = await client.models.list()
    alpha, beta = first.data[0].embedding, first.data[1].embedding
    assert len(alpha) == 32
    assert alpha == pytest.approx(again.data[0].embedding, abs=1e-6)  # base64 float32 vs float
    assert alpha != beta
    assert math.sqrt(sum(v * v for v in alpha)) == pytest.approx(1.0, abs=1e-5)
    assert first.usage.prompt_tokens == estimate_prompt_tokens(["alpha", "beta"])
    assert "gpt-4o-mini" in {m.id for m in listed.data}


@pytest.mark.anyio
async def test_responses_api_plain_and_streamed(sim: SimulatorHandle) -> None:
    async with oai(sim) as client:
        plain = await client.responses.create(
            model="gpt-4o", input="Name three rivers", instructions="Answer briefly."
        )
        async with client.responses.stream(model="gpt-4o", input="Name three rivers") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()

    expected_words = reply_words("Name three rivers")
    assert plain.output_text == " ".join(expected_words)
    assert plain.usage is not None
    assert plain.usage.input_tokens == estimate_prompt_tokens(
        ["Answer briefly.", "Name three rivers"]
    )
    assert plain.usage.output_tokens == len(expected_words)
    assert plain.usage.input_tokens_details.cached_tokens == 0
    assert plain.usage.output_tokens_details.reasoning_tokens == 0
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == len(expected_words)
    assert final.output_text == plain.output_text
    assert final.usage is not None and final.usage.total_tokens == (
        final.usage.input_tokens + final.usage.output_tokens
    )


@pytest.mark.anyio
async def test_responses_stream_events_match_the_sdk_models(sim: SimulatorHandle) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    body = {"model": "gpt-4o", "input": "hello", "stream": True, "max_output_tokens": 2}
    async with (
        httpx.AsyncClient(headers={"authorization": "Bearer k"}) as http,
        http.stream("POST", sim.openai_base_url + "/responses", json=body) as response,
    ):
        events = await raw_events(response)
    parsed = [adapter.validate_python(json.loads(e.data)) for e in events]
    assert [e.event for e in events] == [p.type for p in parsed]
    assert [p.sequence_number for p in parsed] == list(range(len(parsed)))
    assert parsed[-1].type == "response.incomplete"  # cut by max_output_tokens
    assert parsed[-1].response.usage.output_tokens == 2


@pytest.mark.anyio
async def test_responses_api_function_call(sim: SimulatorHandle) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    tool: Any = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    body = {"model": "gpt-4o", "input": "weather in Lima?", "tools": [tool]}
    async with (
        httpx.AsyncClient(headers={"authorization": "Bearer k"}) as http,
        http.stream(
            "POST", sim.openai_base_url + "/responses", json={**body, "stream": True}
        ) as response,
    ):
        events = await raw_events(response)
    parsed = [adapter.validate_python(json.loads(e.data)) for e in events]
    deltas = [p.delta for p in parsed if p.type == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas)) == {"location": "Lima", "unit": "celsius"}
    async with oai(sim) as client:
        plain = await client.responses.create(
            model="gpt-4o", input="weather in Lima?", tools=[tool]
        )
    item = plain.output[0]
    assert item.type == "function_call"
    assert item.name == "get_weather" and json.loads(item.arguments)["location"] == "Lima"
    assert parsed[-1].type == "response.completed"
    assert parsed[-1].response.output[0].call_id == item.call_id


# --- Anthropic Messages ------------------------------------------------------


@pytest.mark.anyio
async def test_anthropic_message_plain_and_streamed(sim: SimulatorHandle) -> None:
    messages: Any = [{"role": "user", "content": "Summarise the plot of Hamlet"}]
    async with claude(sim) as client:
        plain = await client.messages.create(
            model="claude-sonnet-4-6", max_tokens=256, system="You are a critic.", messages=messages
        )
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=256, messages=messages
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()

    assert plain.stop_reason == "end_turn"
    assert plain.content[0].type == "text"
    assert plain.content[0].text.startswith("Simulated answer to: Summarise the plot")
    assert plain.usage.input_tokens == estimate_prompt_tokens(
        ["You are a critic.", "Summarise the plot of Hamlet"]
    )
    assert plain.usage.output_tokens == len(plain.content[0].text.split())
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text == plain.content[0].text
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.stop_reason == "end_turn"


@pytest.mark.anyio
async def test_anthropic_tool_use_streams_input_json(sim: SimulatorHandle) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "stream": True,
        "tools": [WEATHER_TOOL_ANTHROPIC],
        "messages": [{"role": "user", "content": "Weather forecast for Oslo please"}],
    }
    async with (
        httpx.AsyncClient(headers=ANTHROPIC_HEADERS) as http,
        http.stream("POST", sim.base_url + "/v1/messages", json=body) as response,
    ):
        events = await raw_events(response)
    names = [e.event for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert json.loads(events[2].data) == {"type": "ping"}
    # The SDK's event union leaves out ping, which clients skip.
    parsed = [adapter.validate_python(json.loads(e.data)) for e in events if e.event != "ping"]
    assert [n for n in names if n != "ping"] == [p.type for p in parsed]
    kinds = [p.type for p in parsed]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert parsed[1].content_block.type == "tool_use"
    assert parsed[1].content_block.name == "get_weather"
    deltas = [p.delta for p in parsed if p.type == "content_block_delta"]
    assert len(deltas) > 1 and all(d.type == "input_json_delta" for d in deltas)
    assert json.loads("".join(d.partial_json for d in deltas))["location"] == "Oslo"
    assert parsed[-2].delta.stop_reason == "tool_use"

    async with claude(sim) as client:
        plain = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            tools=[WEATHER_TOOL_ANTHROPIC],
            messages=[{"role": "user", "content": "Weather forecast for Oslo please"}],
        )
    assert plain.stop_reason == "tool_use"
    assert plain.content[0].type == "tool_use"
    assert plain.content[0].input == {"location": "Oslo", "unit": "celsius"}


@pytest.mark.anyio
async def test_anthropic_requires_key_and_version_headers(sim: SimulatorHandle) -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "x"}],
    }
    async with httpx.AsyncClient() as http:
        no_version = await http.post(
            sim.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"}
        )
        no_key = await http.post(
            sim.base_url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
        )
        ok = await http.post(sim.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    for response in (no_version, no_key):
        assert response.status_code == 401
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == "authentication_error"
    assert ok.status_code == 200 and ok.json()["type"] == "message"


# --- faults and stats --------------------------------------------------------


@pytest.mark.anyio
async def test_armed_429_fault_applies_count_times_then_clears(sim: SimulatorHandle) -> None:
    async with httpx.AsyncClient() as http:
        armed = await http.post(
            sim.base_url + "/_sim/faults", json={"mode": "429", "count": 2, "model": "gpt-4o"}
        )
    assert armed.status_code == 200
    messages: Any = [{"role": "user", "content": "hi"}]
    async with oai(sim) as client:
        other = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        for _ in range(2):
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=messages)
            assert caught.value.response.headers["retry-after"] == "1"
        after = await client.chat.completions.create(model="gpt-4o", messages=messages)
    assert other.choices[0].finish_reason == after.choices[0].finish_reason == "stop"
    stats = sim.stats()
    assert stats["by_model"] == {"gpt-4o-mini": 1, "gpt-4o": 3}
    assert stats["by_status"] == {"200": 2, "429": 2}
    assert stats["faults"] == {"429": 2}


@pytest.mark.anyio
async def test_an_error_fault_can_take_its_time(sim: SimulatorHandle) -> None:
    async with httpx.AsyncClient() as http:
        armed = await http.post(
            sim.base_url + "/_sim/faults",
            json={"mode": "500", "model": "text-embedding-3-small", "hold_ms": 300},
        )
    assert armed.status_code == 200
    async with oai(sim) as client:
        started = anyio.current_time()
        with pytest.raises(openai.InternalServerError):
            await client.embeddings.create(model="text-embedding-3-small", input="x")
        assert anyio.current_time() - started >= 0.3
        again = await client.embeddings.create(model="text-embedding-3-small", input="x")
    assert again.data
    assert sim.stats()["by_status"] == {"500": 1, "200": 1}


@pytest.mark.anyio
async def test_model_suffix_and_header_select_faults(sim: SimulatorHandle) -> None:
    async with oai(sim) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model="gpt-4o-mini@fault=503", messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.status_code == 503
    async with claude(sim) as client:
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            await client.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-sim-fault": "529"},
            )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert sim.stats()["by_model"] == {"gpt-4o-mini": 1, "claude-sonnet-4-6": 1}


@pytest.mark.anyio
async def test_disconnect_fault_closes_without_an_answer(sim: SimulatorHandle) -> None:
    sim.arm("disconnect")
    async with httpx.AsyncClient(headers={"authorization": "Bearer k"}) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(
                sim.openai_base_url + "/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
            )
        follow_up = await http.get(sim.openai_base_url + "/models")
    assert follow_up.status_code == 200
    assert sim.stats()["faults"] == {"disconnect": 1}


@pytest.mark.anyio
async def test_cut_stream_drops_the_connection_mid_stream(sim: SimulatorHandle) -> None:
    body = {
        "model": "gpt-4o@fault=cut_stream",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
    }
    decoder = SSEDecoder()
    received: list[SSEEvent] = []
    async with httpx.AsyncClient(headers={"authorization": "Bearer k"}) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream(
                "POST", sim.openai_base_url + "/chat/completions", json=body
            ) as r:
                assert r.status_code == 200
                async for chunk in r.aiter_bytes():
                    received.extend(decoder.feed(chunk))
    assert len(received) == 2
    assert all(json.loads(e.data)["object"] == "chat.completion.chunk" for e in received)
    assert sim.stats()["cancelled"] == 0


@pytest.mark.anyio
async def test_malformed_json_and_sse_faults(sim: SimulatorHandle) -> None:
    async with httpx.AsyncClient(headers={"authorization": "Bearer k"}) as http:
        broken = await http.post(
            sim.openai_base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
            headers={"x-sim-fault": "malformed_json"},
        )
        async with http.stream(
            "POST",
            sim.openai_base_url + "/chat/completions",
            json={
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
            headers={"x-sim-fault": "malformed_sse"},
        ) as r:
            events = await raw_events(r)
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    undecodable = []
    for event in events:
        try:
            json.loads(event.data)
        except json.JSONDecodeError:
            undecodable.append(event.data)
    assert undecodable and undecodable != ["[DONE]"]


@pytest.mark.anyio
async def test_timeout_fault_holds_until_the_client_gives_up(sim: SimulatorHandle) -> None:
    sim.arm("timeout")
    async with oai(sim, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
    await wait_for_cancelled(sim, 1)
    assert sim.stats()["faults"] == {"timeout": 1}


@pytest.mark.anyio
async def test_client_leaving_a_slow_stream_is_counted_as_cancelled(sim: SimulatorHandle) -> None:
    async with httpx.AsyncClient() as http:
        await http.post(sim.base_url + "/_sim/faults", json={"mode": "slow", "delay_ms": 200})
    async with claude(sim) as client:
        stream = await client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": "a long answer please"}],
        )
        first = await stream.__anext__()
        await stream.close()
    assert first.type == "message_start"
    await wait_for_cancelled(sim, 1)
    assert sim.stats()["streams"] == 1


@pytest.mark.anyio
async def test_delay_ms_holds_answers_and_counts_clients_that_leave() -> None:
    async with run_simulator(delay_ms=5_000) as slow_sim:
        async with oai(slow_sim, timeout=0.3) as client:
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "x"}]
                )
        await wait_for_cancelled(slow_sim, 1)
        assert slow_sim.stats()["faults"] == {}


def test_listening_socket_lets_asyncio_disable_nagle() -> None:
    # asyncio turns on TCP_NODELAY for accepted connections only when the
    # listening socket names IPPROTO_TCP; without it answers stall on ACKs.
    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


@pytest.mark.anyio
async def test_control_endpoints_validate_report_and_reset(sim: SimulatorHandle) -> None:
    async with httpx.AsyncClient() as http:
        unknown = await http.post(sim.base_url + "/_sim/faults", json={"mode": "explode"})
        negative = await http.post(sim.base_url + "/_sim/faults", json={"mode": "500", "count": -1})
        await http.post(sim.base_url + "/_sim/faults", json={"mode": "500", "count": 3})
        await http.get(sim.openai_base_url + "/models")
        before = (await http.get(sim.base_url + "/_sim/stats")).json()
        reset = await http.post(sim.base_url + "/_sim/reset")
        after = (await http.get(sim.base_url + "/_sim/stats")).json()
    assert unknown.status_code == negative.status_code == 400
    assert before["pending_faults"] == [{"mode": "500", "remaining": 3, "model": None}]
    assert before["by_endpoint"] == {"/v1/models": 1}
    assert reset.status_code == 200
    assert after["requests"] == 0 and after["pending_faults"] == []


@pytest.mark.e2e
def test_cli_serves_on_a_free_port_and_reports_it() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.demo.simulator", "--port", "0", "--delay-ms", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("simulated provider listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1]
        response = httpx.post(
            base_url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "ping"}]},
            headers={"authorization": "Bearer k"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"].startswith(
            "Simulated answer to: ping"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
