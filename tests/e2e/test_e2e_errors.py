"""Errors as the official SDKs see them: the proxy's own, and the upstream's relayed.

Faults are armed on the simulator for one upstream model name each (see
``FAULT_MODELS`` in the harness), so they never land on another test's request.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.configs import MAX_ATTEMPTS, PROXY_KEY, PROXY_TENANT
from tests.e2e.harness import (
    Proxy,
    error_message,
    keyless_http_client,
    sse_data,
    unique,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e


def ask(text: str) -> Any:
    return [{"role": "user", "content": unique(text)}]


def test_unknown_model_is_404_listing_the_available_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=ask("hello"))

    error = caught.value
    assert error.status_code == 404
    assert "no-such-model" in error.message
    assert "Available models:" in error.message
    for name in ("gpt-4o", "claude-sonnet", "auto"):
        assert name in error.message
    assert error.code == "model_not_found"


def test_messages_as_a_string_is_400(client: openai.OpenAI, fresh_sim: Simulator) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[], extra_body={"messages": "not a list"}
        )

    assert caught.value.status_code == 400
    assert caught.value.param == "messages"
    assert "messages" in error_message(caught.value)
    assert fresh_sim.stats()["requests"] == 0  # refused by the proxy itself


def test_a_body_that_is_not_json_is_400(proxy: Proxy) -> None:
    response = httpx.post(
        f"{proxy.openai_base_url}/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json", "authorization": "Bearer any"},
        timeout=10.0,
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_proxy_keys_reject_a_missing_or_wrong_key(keyed_proxy: Proxy, key: str | None) -> None:
    # The SDK insists on an api_key: "no key" is one stripped from the request.
    with openai.OpenAI(
        base_url=keyed_proxy.openai_base_url,
        api_key=key or "unused",
        max_retries=0,
        http_client=keyless_http_client(openai.DefaultHttpxClient) if key is None else None,
    ) as c:
        with pytest.raises(openai.AuthenticationError) as caught:
            c.chat.completions.create(model="gpt-4o", messages=ask("let me in"))
        with pytest.raises(openai.AuthenticationError):
            c.models.list()

    assert caught.value.status_code == 401


def test_proxy_keys_admit_the_configured_key(keyed_proxy: Proxy) -> None:
    with openai.OpenAI(base_url=keyed_proxy.openai_base_url, api_key=PROXY_KEY, max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=ask("let me in"))
        ids = [m.id for m in c.models.list()]

    assert raw.parse().choices[0].message.content
    assert "gpt-4o" in ids
    row = keyed_proxy.ledger_row(raw.headers["x-spendgate-request-id"])
    assert row["tenant"] == PROXY_TENANT  # billed to the key's tenant


def test_upstream_500_is_502_naming_the_provider(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("500", count=MAX_ATTEMPTS, model="gpt-faults")

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-faults", messages=ask("fail with 500"))

    assert isinstance(caught.value, openai.InternalServerError)
    assert caught.value.status_code == 502
    assert error_message(caught.value).startswith("openai: ")
    assert caught.value.type == "upstream_error"
    assert fresh_sim.calls("gpt-faults") == MAX_ATTEMPTS  # retried, then gave up


def test_a_retry_recovers_from_one_upstream_500(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("500", count=1, model="gpt-faults")

    completion = client.chat.completions.create(model="gpt-faults", messages=ask("retry me"))

    assert completion.choices[0].message.content
    assert fresh_sim.calls("gpt-faults") == 2


def test_upstream_read_timeout_is_504(client: openai.OpenAI, fresh_sim: Simulator) -> None:
    fresh_sim.arm("timeout", count=MAX_ATTEMPTS, model="gpt-timeout")

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-timeout", messages=ask("take your time"))

    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    assert "openai-short" in caught.value.message


def test_upstream_429_is_passed_through_after_retries(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("429", count=MAX_ATTEMPTS, model="gpt-faults")

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-faults", messages=ask("slow down"))

    assert caught.value.status_code == 429
    # An upstream client error keeps the upstream's wording; the provider is named
    # in the header, and the upstream's retry-after is passed on.
    assert error_message(caught.value) == "Rate limit reached (simulated)."
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["x-spendgate-provider"] == "openai"
    assert caught.value.response.headers["retry-after"] == "1"
    assert fresh_sim.calls("gpt-faults") == MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("model", "provider"), [("gpt-faults", "openai"), ("claude-faults", "anthropic")]
)
def test_a_stream_cut_midway_ends_with_an_error_event(
    proxy: Proxy, client: openai.OpenAI, fresh_sim: Simulator, model: str, provider: str
) -> None:
    fresh_sim.arm("cut_stream", count=1, model=model)
    with (
        pytest.raises(openai.APIError) as caught,
        client.chat.completions.create(
            model=model, messages=ask("cut me off"), stream=True
        ) as stream,
    ):
        for _ in stream:
            pass
    assert error_message(caught.value).startswith(f"{provider}: ")

    fresh_sim.arm("cut_stream", count=1, model=model)
    response = httpx.post(
        f"{proxy.openai_base_url}/chat/completions",
        json={"model": model, "messages": ask("cut me off"), "stream": True},
        headers={"authorization": "Bearer any"},
        timeout=10.0,
    )
    data = sse_data(response.text)
    assert response.status_code == 200
    assert "[DONE]" not in data
    assert len(data) >= 2  # it did start before it broke
    last = json.loads(data[-1])
    assert set(last) == {"error"}
    assert last["error"]["message"].startswith(f"{provider}:")
    assert last["error"]["type"] == "upstream_error"


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("malformed_json", "upstream_bad_response"),
        ("malformed_sse", "upstream_bad_response"),
        ("disconnect", "upstream_unreachable"),
    ],
)
@pytest.mark.parametrize(
    ("model", "provider"), [("gpt-faults", "openai"), ("claude-faults", "anthropic")]
)
def test_broken_upstream_answers_are_502(
    client: openai.OpenAI,
    fresh_sim: Simulator,
    mode: str,
    code: str,
    model: str,
    provider: str,
) -> None:
    fresh_sim.arm(mode, count=MAX_ATTEMPTS, model=model)

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=model, messages=ask(f"break with {mode}"))

    assert caught.value.status_code == 502
    assert caught.value.code == code
    assert error_message(caught.value).startswith(f"{provider}: ")
    assert fresh_sim.calls(model) == MAX_ATTEMPTS  # each is worth a retry


def test_a_responses_stream_cut_midway_ends_with_a_responses_error_event(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("cut_stream", count=1, model="gpt-faults")
    with client.responses.create(
        model="gpt-faults", input=unique("cut me off"), stream=True
    ) as stream:
        seen = list(stream)

    types = [event.type for event in seen]
    assert types[0] == "response.created"  # it started before it broke
    assert "response.completed" not in types
    # The Responses API's own error event, which the SDK hands over as one, numbered in turn.
    last = seen[-1]
    assert last.type == "error"
    assert last.code == "upstream_bad_response"
    assert last.message.startswith("openai: ")
    assert last.sequence_number == seen[-2].sequence_number + 1


def test_an_embeddings_upstream_500_is_502(client: openai.OpenAI, fresh_sim: Simulator) -> None:
    # Enough for every attempt the proxy makes: embeddings are retried like chat.
    fresh_sim.arm("500", count=MAX_ATTEMPTS, model="text-embedding-3-small")

    with pytest.raises(openai.InternalServerError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input=unique("embed me"))

    assert caught.value.status_code == 502
    assert error_message(caught.value).startswith("openai: ")
