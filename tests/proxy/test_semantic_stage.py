"""The semantic cache in the pipeline: near-duplicates hit, different facts never do."""

from __future__ import annotations

import httpx
import pytest

from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


def _ask(text: str) -> dict[str, object]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }


async def test_paraphrase_hits_and_a_different_number_misses() -> None:
    settings = make_settings(cache={"semantic": {"enabled": True}})
    recorder = Recorder(httpx.Response(200, json=completion("Paris.")))
    async with proxy_client(recorder, settings) as client:
        first = await client.post(
            "/v1/chat/completions", json=_ask("What is the capital of France?")
        )
        near = await client.post(
            "/v1/chat/completions", json=_ask("what is the capital of  France")
        )
        other = await client.post(
            "/v1/chat/completions", json=_ask("What is the capital of Germany?")
        )
        number = await client.post("/v1/chat/completions", json=_ask("Is 7 a prime number?"))
        number2 = await client.post("/v1/chat/completions", json=_ask("Is 9 a prime number?"))
    assert first.headers["x-spendgate-cache"] == "miss"
    assert near.headers["x-spendgate-cache"] == "semantic"
    assert 0.9 <= float(near.headers["x-spendgate-cache-similarity"]) <= 1.0
    assert near.json()["choices"][0]["message"]["content"] == "Paris."
    assert near.headers["x-spendgate-cost-usd"] == "0.000000"  # the hash embedder costs nothing
    assert other.headers["x-spendgate-cache"] == "miss"
    assert (
        number.headers["x-spendgate-cache"] == "miss"
        and number2.headers["x-spendgate-cache"] == "miss"
    )
    assert len(recorder.requests) == 4


async def test_semantic_never_crosses_tenants_or_system_prompts() -> None:
    settings = make_settings(
        cache={"semantic": {"enabled": True}},
        auth={"keys": [{"key": "ka", "tenant": "a"}, {"key": "kb", "tenant": "b"}]},
    )
    recorder = Recorder(httpx.Response(200, json=completion("Paris.")))
    async with proxy_client(recorder, settings) as client:
        await client.post(
            "/v1/chat/completions",
            json=_ask("What is the capital of France?"),
            headers={"authorization": "Bearer ka"},
        )
        other_tenant = await client.post(
            "/v1/chat/completions",
            json=_ask("what is the capital of france"),
            headers={"authorization": "Bearer kb"},
        )
        body = _ask("what is the capital of france")
        body["messages"][0]["content"] = "Answer at length."  # type: ignore[index]
        other_system = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer ka"}
        )
    assert other_tenant.headers["x-spendgate-cache"] == "miss"
    assert other_system.headers["x-spendgate-cache"] == "miss"
