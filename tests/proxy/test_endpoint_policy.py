"""One policy for every model endpoint: chat, embeddings and responses, streaming or not.

The upstreams are an ``httpx.MockTransport`` script that counts calls per
(host, endpoint, upstream model) and fails the ones it is told to.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from proxy.settings import Settings, parse_config
from tests.proxy.support import completion, proxy_client

pytestmark = pytest.mark.anyio

P1, P2 = "p1.openai.test", "p2.openai.test"
ROUTING = {"retry_base_s": 0.001, "retry_cap_s": 0.002, "breaker_failures": 1000}


def settings(**sections: Any) -> Settings:
    data: dict[str, Any] = {
        "providers": {
            "p1": {"type": "openai", "base_url": f"https://{P1}/v1", "api_key": "k1"},
            "p2": {"type": "openai", "base_url": f"https://{P2}/v1", "api_key": "k2"},
            "pa": {"type": "anthropic", "base_url": "https://pa.anthropic.test", "api_key": "k3"},
        },
        "models": [
            {"name": "gpt-4o", "provider": "p1", "tier": "large"},
            {"name": "gpt-4o-b", "provider": "p2", "upstream": "gpt-4o", "tier": "large"},
            {"name": "claude", "provider": "pa", "upstream": "claude-sonnet-4-6", "tier": "large"},
            {"name": "emb", "provider": "p1", "upstream": "text-embedding-3-small", "tier": "small"},
            {"name": "emb-b", "provider": "p2", "upstream": "text-embedding-3-small", "tier": "small"},
            {"name": "emb-large", "provider": "p1", "upstream": "text-embedding-3-large", "tier": "small"},
            {"name": "mystery", "provider": "p1", "upstream": "mystery-model-x"},
        ],
        "routing": ROUTING,
        "ledger": {"url": "sqlite:///:memory:"},
        **sections,
    }  # fmt: skip
    return Settings(parse_config(data, known_provider_types=("openai", "anthropic")), "test")


RESPONSE_EVENTS = [
    {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
    {"type": "response.output_text.delta", "delta": "Hi"},
    {
        "type": "response.completed",
        "response": {"id": "resp_1", "status": "completed",
                     "usage": {"input_tokens": 7, "output_tokens": 1, "total_tokens": 8}},
    },
]  # fmt: skip


def sse(events: list[dict[str, Any]]) -> Iterator[bytes]:
    for seq, event in enumerate(events):
        data = json.dumps({**event, "sequence_number": seq})
        yield f"event: {event['type']}\ndata: {data}\n\n".encode()


class CutStream(httpx.AsyncByteStream):
    """Two events, then the connection drops."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in list(sse(RESPONSE_EVENTS))[:2]:
            yield frame
        raise httpx.ReadError("connection reset by peer")


class Script:
    """Answers per endpoint; ``fail[(host, endpoint, model)]`` 500s that many calls."""

    def __init__(self, *, usage_tokens: int = 10) -> None:
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.fail: Counter[tuple[str, str, str]] = Counter()
        self.cut: set[tuple[str, str, str]] = set()
        self.bodies: list[dict[str, Any]] = []
        self.usage_tokens = usage_tokens

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        key = (request.url.host, request.url.path.rsplit("/", 1)[-1], str(body.get("model")))
        self.calls[key] += 1
        if self.fail[key] > 0:
            self.fail[key] -= 1
            return httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
        endpoint = key[1]
        if endpoint == "embeddings":
            usage = {"prompt_tokens": self.usage_tokens, "total_tokens": self.usage_tokens}
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}]
            return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})
        if endpoint == "responses":
            if body.get("stream"):
                stream = (
                    CutStream()
                    if key in self.cut
                    else httpx.ByteStream(b"".join(sse(RESPONSE_EVENTS)))
                )
                return httpx.Response(
                    200, stream=stream, headers={"content-type": "text/event-stream"}
                )
            usage = {"input_tokens": self.usage_tokens, "output_tokens": 1, "total_tokens": 9}
            return httpx.Response(200, json={"id": "resp_1", "object": "response", "usage": usage})
        usage = {"prompt_tokens": self.usage_tokens, "completion_tokens": 1, "total_tokens": 11}
        return httpx.Response(200, json=completion(model=str(body.get("model")), usage=usage))

    def count(self, host: str, endpoint: str, model: str) -> int:
        return self.calls[(host, endpoint, model)]


CALLS = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    "embeddings": ("/v1/embeddings", {"input": "hi"}),
    "responses": ("/v1/responses", {"input": "hi"}),
}


async def call(
    client: httpx.AsyncClient, endpoint: str, model: str, **extra: Any
) -> httpx.Response:
    path, body = CALLS[endpoint]
    return await client.post(path, json={"model": model, **body, **extra})


@pytest.mark.parametrize(
    ("endpoint", "stream"), [("embeddings", False), ("responses", False), ("responses", True)]
)
async def test_one_upstream_500_is_retried(endpoint: str, stream: bool) -> None:
    script = Script()
    upstream = "text-embedding-3-small" if endpoint == "embeddings" else "gpt-4o"
    model = "emb" if endpoint == "embeddings" else "gpt-4o"
    script.fail[(P1, endpoint, upstream)] = 1
    async with proxy_client(script, settings()) as client:
        reply = await call(client, endpoint, model, stream=stream)
    assert reply.status_code == 200, reply.text
    assert script.count(P1, endpoint, upstream) == 2  # the same model, once more
    assert reply.headers["x-spendgate-provider"] == "p1"


async def test_responses_fall_back_within_the_tier_to_a_provider_that_serves_them() -> None:
    script = Script()
    script.fail[(P1, "responses", "gpt-4o")] = 10
    async with proxy_client(script, settings()) as client:
        reply = await call(client, "responses", "gpt-4o")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-spendgate-model"] == "gpt-4o-b"  # same tier, other provider
    assert script.count(P2, "responses", "gpt-4o") == 1
    # The Anthropic model shares the tier but has no Responses API: never tried.
    assert all(host != "pa.anthropic.test" for host, _, _ in script.calls)


async def test_a_follow_up_response_stays_on_the_provider_that_holds_its_predecessor() -> None:
    script = Script()
    script.fail[(P1, "responses", "gpt-4o")] = 10
    async with proxy_client(script, settings()) as client:
        reply = await call(client, "responses", "gpt-4o", previous_response_id="resp_0")
    assert reply.status_code == 502
    assert script.count(P2, "responses", "gpt-4o") == 0


async def test_embeddings_fall_back_only_to_the_same_embedding_model() -> None:
    script = Script()
    script.fail[(P1, "embeddings", "text-embedding-3-small")] = 10
    async with proxy_client(script, settings()) as client:
        reply = await call(client, "embeddings", "emb")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-spendgate-model"] == "emb-b"
    # Same tier, but other vectors: never a fallback.
    assert script.count(P1, "embeddings", "text-embedding-3-large") == 0


async def test_route_off_asks_for_the_named_model_alone() -> None:
    script = Script()
    script.fail[(P1, "responses", "gpt-4o")] = 10
    async with proxy_client(script, settings()) as client:
        path, body = CALLS["responses"]
        reply = await client.post(
            path, json={"model": "gpt-4o", **body}, headers={"x-spendgate-route": "off"}
        )
    assert reply.status_code == 502
    assert script.count(P2, "responses", "gpt-4o") == 0


def budget(limit_usd: str) -> list[dict[str, Any]]:
    return [{"name": "daily", "tenant": "default", "period": "day", "limit_usd": limit_usd}]


async def test_a_spent_budget_refuses_every_endpoint() -> None:
    script = Script(usage_tokens=400_000)  # $1.00 at gpt-4o's $2.50 per 1M input tokens
    limited = settings(budgets=budget("0.50"), cache={"enabled": False})  # a hit is free anyway
    async with proxy_client(script, limited) as client:
        first = await call(client, "chat", "gpt-4o")
        assert first.status_code == 200, first.text
        await asyncio.sleep(0.05)  # settling runs after the answer
        before = sum(script.calls.values())
        for endpoint, model in (("chat", "gpt-4o"), ("embeddings", "emb"), ("responses", "gpt-4o")):
            for stream in (False, True):
                if endpoint == "embeddings" and stream:
                    continue
                reply = await call(client, endpoint, model, stream=stream)
                assert reply.status_code == 429, (endpoint, stream, reply.text)
                error = reply.json()["error"]
                assert error["type"] == "budget_exceeded" and "'daily'" in error["message"]
        assert sum(script.calls.values()) == before  # refused before any upstream call


async def test_embeddings_and_responses_are_charged_against_budgets() -> None:
    script = Script(usage_tokens=300_000)  # $0.006 at text-embedding-3-small's $0.02 per 1M
    async with proxy_client(script, settings(budgets=budget("0.01"))) as client:
        assert (await call(client, "embeddings", "emb")).status_code == 200
        await asyncio.sleep(0.05)
        assert (await call(client, "embeddings", "emb")).status_code == 200
        await asyncio.sleep(0.05)
        refused = await call(client, "embeddings", "emb")
    assert refused.status_code == 429, refused.text


@pytest.mark.parametrize("endpoint", ["chat", "embeddings", "responses"])
async def test_an_unpriced_model_is_refused_under_a_budget(endpoint: str) -> None:
    script = Script()
    async with proxy_client(script, settings(budgets=budget("5"))) as client:
        reply = await call(client, endpoint, "mystery")
    assert reply.status_code == 403, reply.text
    error = reply.json()["error"]
    assert error["code"] == "budget_unpriced_model" and error["param"] == "model"
    assert "'mystery' has no known price" in error["message"] and "'daily'" in error["message"]
    assert not script.calls


async def test_an_unpriced_model_outside_any_budget_is_served() -> None:
    script = Script()
    other = [{"tenant": "someone-else", "period": "day", "limit_usd": "5"}]
    async with proxy_client(script, settings(budgets=other)) as client:
        reply = await call(client, "chat", "mystery")
    assert reply.status_code == 200, reply.text


async def test_rate_limits_count_every_endpoint() -> None:
    auth = {"keys": [{"key": "k", "tenant": "t", "rpm": 2}]}
    async with proxy_client(Script(), settings(auth=auth)) as client:
        client.headers["authorization"] = "Bearer k"
        assert (await call(client, "embeddings", "emb")).status_code == 200
        assert (await call(client, "responses", "gpt-4o")).status_code == 200
        refused = await call(client, "chat", "gpt-4o")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "retry-after" in refused.headers


@pytest.mark.parametrize("endpoint", ["embeddings", "responses"])
async def test_auto_is_routed_on_chat_only(endpoint: str) -> None:
    async with proxy_client(Script(), settings()) as client:
        reply = await call(client, endpoint, "auto")
    assert reply.status_code == 400
    assert "/v1/chat/completions only" in reply.json()["error"]["message"]


async def test_a_broken_responses_stream_ends_with_a_responses_error_event() -> None:
    script = Script()
    script.cut.add((P1, "responses", "gpt-4o"))
    async with proxy_client(script, settings()) as client:
        reply = await call(client, "responses", "gpt-4o", stream=True)
    assert reply.status_code == 200
    frames = [f for f in reply.text.split("\n\n") if f]
    assert len(frames) == 3
    last = frames[-1].splitlines()
    assert last[0] == "event: error"
    error = json.loads(last[1].removeprefix("data: "))
    assert error == {
        "type": "error",
        "code": "upstream_bad_response",
        "message": "p1: the upstream closed the connection unexpectedly",
        "param": None,
        "sequence_number": 2,
    }
    assert "[DONE]" not in reply.text and '"choices"' not in reply.text


async def test_a_whole_answer_to_a_stream_request_is_passed_on() -> None:
    script = Script()
    async with proxy_client(script, settings()) as client:
        reply = await call(client, "embeddings", "emb", stream=True)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["object"] == "list"
