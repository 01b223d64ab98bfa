"""The gateway forwards chat completions unchanged and answers in kind."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


async def test_body_and_answer_pass_through_byte_for_byte() -> None:
    upstream_body = json.dumps(completion("Hi there"), indent=2).encode()  # odd spacing on purpose
    recorder = Recorder(
        httpx.Response(200, content=upstream_body, headers={"content-type": "application/json"})
    )
    raw = b'{"model": "gpt-4o",  "messages": [{"role": "user", "content": "hi"}], "seed": 7, "future_field": {"x": [1]}}'
    async with proxy_client(recorder) as client:
        response = await client.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
    assert response.content == upstream_body
    assert recorder.requests[0].content == raw
    assert str(recorder.requests[0].url) == "https://api.openai.test/v1/chat/completions"
    assert response.headers["x-spendgate-model"] == "gpt-4o"
    assert response.headers["x-spendgate-provider"] == "openai"
    assert response.headers["x-spendgate-request-id"].startswith("sg-")


async def test_upstream_name_replaces_model_and_keeps_other_fields() -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    body = {
        "model": "fast",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "reasoning_effort": "low",
    }
    async with proxy_client(recorder) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    sent = recorder.bodies[0]
    assert sent["model"] == "gpt-4o-mini-2024-07-18"
    assert sent["tools"] == body["tools"] and sent["reasoning_effort"] == "low"


async def test_client_key_is_not_forwarded_but_upstream_key_is() -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    async with proxy_client(recorder) as client:
        await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer client-own-key"},
        )
    assert recorder.requests[0].headers["authorization"] == "Bearer sk-upstream-secret"


async def test_forward_client_key_when_the_provider_asks_for_it() -> None:
    settings = make_settings(
        providers={
            "openai": {
                "type": "openai",
                "base_url": "https://api.openai.test/v1",
                "forward_client_key": True,
            }
        },
        models=[{"name": "gpt-4o", "provider": "openai"}],
    )
    recorder = Recorder(httpx.Response(200, json=completion()))
    async with proxy_client(recorder, settings) as client:
        await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer client-own-key"},
        )
    assert recorder.requests[0].headers["authorization"] == "Bearer client-own-key"


async def test_models_lists_configured_models_and_auto() -> None:
    async with proxy_client(Recorder(httpx.Response(500))) as client:
        response = await client.get("/v1/models")
    ids = [m["id"] for m in response.json()["data"]]
    assert ids == [
        "gpt-4o",
        "gpt-4o-mini",
        "fast",
        "claude-sonnet",
        "text-embedding-3-small",
        "auto",
    ]


def _sse(*events: dict | str) -> bytes:
    out = b""
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        out += f"data: {data}\n\n".encode()
    return out


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o",
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def _stream_response(*events: dict | str) -> httpx.Response:
    return httpx.Response(200, content=_sse(*events), headers={"content-type": "text/event-stream"})


async def test_stream_asks_upstream_for_usage_and_hides_it_from_the_client() -> None:
    recorder = Recorder(
        _stream_response(
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": "Hi"}),
            _chunk({}, "stop"),
            USAGE_CHUNK,
            "[DONE]",
        )
    )
    async with proxy_client(recorder) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert recorder.bodies[0]["stream_options"] == {"include_usage": True}
    datas = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(c["choices"] for c in chunks)  # the usage chunk was dropped
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hi"


async def test_stream_keeps_usage_when_the_client_asked() -> None:
    recorder = Recorder(
        _stream_response(_chunk({"content": "Hi"}), _chunk({}, "stop"), USAGE_CHUNK, "[DONE]")
    )
    async with proxy_client(recorder) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    datas = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    usage_chunk = json.loads(datas[-2])
    assert usage_chunk["usage"]["total_tokens"] == 7 and usage_chunk["choices"] == []


async def test_stream_cut_before_the_end_ends_with_an_error_event() -> None:
    recorder = Recorder(
        _stream_response(_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hi"}))
    )
    async with proxy_client(recorder) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-4o",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    datas = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    last = json.loads(datas[-1])
    assert "[DONE]" not in datas
    assert last["error"]["code"] == "upstream_bad_response" and "openai" in last["error"]["message"]


async def test_cost_headers_are_exact_micro_dollars() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 400},
    }
    recorder = Recorder(httpx.Response(200, json=completion(usage=usage)))
    async with proxy_client(recorder) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per 1M tokens:
    # 600 x 2.50 + 400 x 1.25 + 100 x 10 = 1500 + 500 + 1000 = 3000 micro-dollars
    assert response.headers["x-spendgate-cost-usd"] == "0.003000"
    assert response.headers["x-spendgate-baseline-usd"] == "0.003000"
    assert response.headers["x-spendgate-savings-usd"] == "0.000000"


async def test_stream_usage_chunk_carries_the_spendgate_object() -> None:
    recorder = Recorder(
        _stream_response(
            _chunk({"content": "Hi"}),
            _chunk({}, "stop"),
            {
                **USAGE_CHUNK,
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
            },
            "[DONE]",
        )
    )
    async with proxy_client(recorder) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    datas = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    spendgate = json.loads(datas[-2])["spendgate"]
    # gpt-4o-mini: 1000 x 0.15 + 100 x 0.60 = 150 + 60 = 210 micro-dollars
    assert spendgate["cost_usd"] == "0.000210" and spendgate["savings_usd"] == "0.000000"
