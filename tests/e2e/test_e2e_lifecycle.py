"""A request's life around the upstream call: cache, routing, ledger, concurrency, cancellation."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import anyio
import openai
import pytest

from tests.e2e.harness import (
    CLAUDE_MODEL,
    CLAUDE_UPSTREAM,
    OPENAI_MODEL,
    Proxy,
    raw_stream,
    unique,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e


def test_a_repeated_request_is_answered_from_the_cache(
    client: openai.OpenAI, sim: Simulator
) -> None:
    sim.reset()
    messages: Any = [{"role": "user", "content": unique("Cache me.")}]
    first = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages)
    second = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages)

    assert first.headers["x-spendgate-cache"] == "miss"
    assert second.headers["x-spendgate-cache"] == "exact"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert float(second.headers["x-spendgate-cost-usd"]) == 0
    assert float(second.headers["x-spendgate-savings-usd"]) > 0
    assert sim.stats()["by_endpoint"].get("/v1/chat/completions") == 1


def test_cache_off_header_reaches_the_upstream(client: openai.OpenAI, sim: Simulator) -> None:
    sim.reset()
    messages: Any = [{"role": "user", "content": unique("Do not cache me.")}]
    client.chat.completions.create(model=OPENAI_MODEL, messages=messages)
    again = client.chat.completions.with_raw_response.create(
        model=OPENAI_MODEL,
        messages=messages,
        extra_headers={"x-spendgate-cache": "off"},
    )

    assert again.headers["x-spendgate-cache"] == "bypass"
    assert sim.stats()["by_endpoint"].get("/v1/chat/completions") == 2


@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
def test_a_cached_answer_replays_as_a_stream(
    proxy: Proxy, client: openai.OpenAI, sim: Simulator, model: str
) -> None:
    sim.reset()
    messages: Any = [{"role": "user", "content": unique("Cache me, then stream me.")}]
    text = client.chat.completions.create(model=model, messages=messages).choices[0].message.content
    body = {"model": model, "messages": messages, "stream": True}
    plain, plain_data = raw_stream(proxy, body)
    usage, usage_data = raw_stream(proxy, {**body, "stream_options": {"include_usage": True}})

    assert (
        sim.stats()["by_endpoint"].get("/v1/chat/completions", 0)
        + sim.stats()["by_endpoint"].get("/v1/messages", 0)
        == 1
    )
    for response, data in ((plain, plain_data), (usage, usage_data)):
        assert response.headers["x-spendgate-cache"] == "exact"
        assert data[-1] == "[DONE]"
        chunks = [json.loads(d) for d in data[:-1]]
        pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
        assert "".join(pieces) == text
    assert all(json.loads(d).get("usage") is None for d in plain_data[:-1])
    last = json.loads(usage_data[-2])
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] > 0
    assert float(last["spendgate"]["cost_usd"]) == 0
    assert last["spendgate"]["savings_usd"] == last["spendgate"]["baseline_usd"]
    assert last["spendgate"]["request_id"] == usage.headers["x-spendgate-request-id"]


def test_auto_is_routed_to_a_configured_model(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": unique("Hi, how are you?")}]
    )
    completion = raw.parse()

    chosen = raw.headers["x-spendgate-model"]
    assert chosen in (OPENAI_MODEL, "gpt-4o-mini", CLAUDE_MODEL)
    assert completion.model == chosen
    assert chosen in raw.headers["x-spendgate-route-reason"]
    assert completion.choices[0].message.content


def micro(usd: str) -> int:
    """A decimal USD string as integer micro-dollars, exactly."""
    return int(Decimal(usd) * 1_000_000)


@pytest.mark.parametrize("model", [OPENAI_MODEL, CLAUDE_MODEL])
def test_the_ledger_records_what_the_client_was_told(
    proxy: Proxy, client: openai.OpenAI, model: str
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": unique("Bill me.")}]
    )
    completion = raw.parse()
    _, data = raw_stream(
        proxy,
        {
            "model": model,
            "messages": [{"role": "user", "content": unique("Bill my stream.")}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    streamed = json.loads(data[-2])

    row = proxy.ledger_row(raw.headers["x-spendgate-request-id"])
    assert completion.usage is not None
    assert row["served_model"] == model
    assert row["http_status"] == 200
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert row["cost"] == micro(raw.headers["x-spendgate-cost-usd"])
    assert row["baseline_cost"] == micro(raw.headers["x-spendgate-baseline-usd"])
    assert row["savings"] == micro(raw.headers["x-spendgate-savings-usd"])

    stream_row = proxy.ledger_row(streamed["spendgate"]["request_id"])
    assert stream_row["completion_tokens"] == streamed["usage"]["completion_tokens"]
    assert stream_row["cost"] == micro(streamed["spendgate"]["cost_usd"])
    assert stream_row["savings"] == micro(streamed["spendgate"]["savings_usd"])


@pytest.mark.anyio
async def test_concurrent_requests_are_answered_independently(proxy: Proxy) -> None:
    prompts = [unique(f"Concurrent request {i}.") for i in range(12)]
    async with openai.AsyncOpenAI(
        base_url=proxy.openai_base_url, api_key="any", max_retries=0
    ) as aclient:

        async def ask(i: int, prompt: str) -> tuple[str, str]:
            raw = await aclient.chat.completions.with_raw_response.create(
                model=(OPENAI_MODEL, CLAUDE_MODEL)[i % 2],
                messages=[{"role": "user", "content": prompt}],
            )
            text = raw.parse().choices[0].message.content
            assert text is not None
            return text, raw.headers["x-spendgate-request-id"]

        results = await asyncio.gather(*(ask(i, p) for i, p in enumerate(prompts)))

    for prompt, (text, _) in zip(prompts, results, strict=True):
        assert prompt[:14] in text  # each answer quotes its own question
    assert len({request_id for _, request_id in results}) == len(prompts)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "upstream"), [(OPENAI_MODEL, "gpt-4o"), (CLAUDE_MODEL, CLAUDE_UPSTREAM)]
)
async def test_a_client_leaving_mid_stream_cancels_the_upstream(
    proxy: Proxy, fresh_sim: Simulator, model: str, upstream: str
) -> None:
    fresh_sim.arm("slow", count=1, model=upstream)  # 200 ms a chunk: time to leave
    async with openai.AsyncOpenAI(
        base_url=proxy.openai_base_url, api_key="any", max_retries=0
    ) as aclient:
        stream = await aclient.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": unique("Leave early.")}],
            stream=True,
        )
        request_id = stream.response.headers["x-spendgate-request-id"]
        async with stream:
            async for _ in stream:
                break

    deadline = time.monotonic() + 5.0
    while fresh_sim.stats()["cancelled"] == 0 and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert fresh_sim.stats()["cancelled"] == 1
    row = await anyio.to_thread.run_sync(proxy.ledger_row, request_id)
    assert (row["http_status"], row["error_type"]) == (499, "client_disconnected")
