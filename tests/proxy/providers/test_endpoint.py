"""The URLs and headers every provider's requests carry, from the one shared builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from proxy.providers.anthropic import ANTHROPIC_VERSION, AnthropicProvider
from proxy.providers.base import ProviderSettings, UpstreamRequest
from proxy.providers.openai import OpenAIProvider

KEY = "sk-provider-key-0123456789"
CLIENT_KEY = "sk-client-key-9876543210"
JSON = "application/json"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Call:
    body: dict[str, Any]
    raw: bytes = b'{"model":"m"}'
    client_key: str | None = None


def settings(kind: str, **overrides: Any) -> ProviderSettings:
    fields: dict[str, Any] = {"name": kind, "type": kind, "base_url": "https://up.example/v1/"}
    fields.update(overrides)
    return ProviderSettings(**fields)


def openai_chat(
    *, stream: bool = False, client_key: str | None = None, **overrides: Any
) -> UpstreamRequest:
    provider = OpenAIProvider(settings("openai", **overrides))
    return provider.build_chat_request(
        Call(dict(BODY), client_key=client_key), upstream_model="m", stream=stream
    )


def anthropic_chat(*, client_key: str | None = None, **overrides: Any) -> UpstreamRequest:
    provider = AnthropicProvider(settings("anthropic", **overrides))
    return provider.build_chat_request(
        Call(dict(BODY), client_key=client_key), upstream_model="m", stream=False
    )


def test_openai_urls_hang_off_the_base_without_its_final_slash() -> None:
    provider = OpenAIProvider(settings("openai", api_key=KEY))
    assert openai_chat(api_key=KEY).url == "https://up.example/v1/chat/completions"
    passthrough = provider.build_passthrough_request("embeddings", b"{}", client_key=None)
    assert passthrough.url == "https://up.example/v1/embeddings"
    assert passthrough.method == "POST" and passthrough.content == b"{}"


def test_openai_headers_plain_and_streamed() -> None:
    assert openai_chat(api_key=KEY).headers == {
        "content-type": JSON,
        "accept": JSON,
        "authorization": f"Bearer {KEY}",
    }
    assert openai_chat(api_key=KEY, stream=True).headers == {
        "content-type": JSON,
        "accept": "text/event-stream",
        "authorization": f"Bearer {KEY}",
    }
    assert openai_chat().headers == {"content-type": JSON, "accept": JSON}


def test_openai_configured_headers_keep_their_case_and_the_key_wins() -> None:
    configured = {"X-Team": "a", "authorization": "Bearer configured", "accept": "text/plain"}
    assert openai_chat(api_key=KEY, headers=configured).headers == {
        "content-type": JSON,
        "accept": "text/plain",
        "X-Team": "a",
        "authorization": f"Bearer {KEY}",
    }
    streamed = openai_chat(api_key=KEY, headers=configured, stream=True).headers
    assert streamed["accept"] == "text/event-stream"
    # Without a key of its own the provider sends the configured one.
    assert openai_chat(headers=configured).headers["authorization"] == "Bearer configured"


@pytest.mark.parametrize(
    ("forward", "client_key", "sent"),
    [
        (False, CLIENT_KEY, KEY),  # never the client's key unless the provider asks for it
        (True, CLIENT_KEY, CLIENT_KEY),
        (True, None, KEY),  # no client key: the provider's own
        (True, "", KEY),
    ],
)
def test_which_key_goes_upstream(forward: bool, client_key: str | None, sent: str) -> None:
    fields = {"api_key": KEY, "forward_client_key": forward}
    assert openai_chat(client_key=client_key, **fields).headers["authorization"] == f"Bearer {sent}"
    assert anthropic_chat(client_key=client_key, **fields).headers["x-api-key"] == sent


def test_a_forwarded_key_goes_out_without_a_key_of_the_providers_own() -> None:
    headers = openai_chat(client_key=CLIENT_KEY, forward_client_key=True).headers
    assert headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert "x-api-key" not in anthropic_chat(forward_client_key=True).headers


def test_anthropic_headers_lower_configured_names_and_fix_the_content_type() -> None:
    configured = {"Anthropic-Version": "2024-01-01", "Anthropic-Beta": "x", "Content-Type": "t"}
    request = anthropic_chat(api_key=KEY, headers=configured)
    assert request.url == "https://up.example/v1/messages"
    assert request.headers == {
        "anthropic-version": "2024-01-01",
        "anthropic-beta": "x",
        "content-type": JSON,
        "x-api-key": KEY,
    }
    assert anthropic_chat().headers == {
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": JSON,
    }


def test_each_request_gets_its_own_headers() -> None:
    provider = OpenAIProvider(settings("openai", api_key=KEY))
    first = provider.build_chat_request(Call(dict(BODY)), upstream_model="m", stream=False)
    first.headers["x-mutated"] = "yes"
    second = provider.build_chat_request(Call(dict(BODY)), upstream_model="m", stream=False)
    assert "x-mutated" not in second.headers
