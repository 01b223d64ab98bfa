"""Test support: an app whose upstreams are an ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from proxy.server.app import create_app
from proxy.settings import Settings, parse_config

Handler = Callable[[httpx.Request], httpx.Response]

BASE_CONFIG: dict[str, Any] = {
    "providers": {
        "openai": {
            "type": "openai",
            "base_url": "https://api.openai.test/v1",
            "api_key": "sk-upstream-secret",
        },
        "anthropic": {
            "type": "anthropic",
            "base_url": "https://api.anthropic.test",
            "api_key": "sk-ant-secret",
        },
    },
    "models": [
        {"name": "gpt-4o", "provider": "openai", "tier": "large"},
        {"name": "gpt-4o-mini", "provider": "openai", "tier": "small"},
        {"name": "fast", "provider": "openai", "upstream": "gpt-4o-mini-2024-07-18"},
        {
            "name": "claude-sonnet",
            "provider": "anthropic",
            "upstream": "claude-sonnet-4-5",
            "tier": "large",
        },
        {"name": "text-embedding-3-small", "provider": "openai"},
    ],
    "ledger": {"url": "sqlite:///:memory:"},
}


def make_settings(**overrides: Any) -> Settings:
    data = json.loads(json.dumps(BASE_CONFIG))
    data.update(overrides)
    return Settings(parse_config(data, known_provider_types=("openai", "anthropic")), "test")


def completion(
    content: str = "Hello!", *, model: str = "gpt-4o", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


@asynccontextmanager
async def proxy_client(
    handler: Handler, settings: Settings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings or make_settings(), transport_factory=lambda limits: httpx.MockTransport(handler)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield client


class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(
        self, *responses: httpx.Response | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self._responses.pop(0) if len(self._responses) > 1 else self._responses[0]
        return item(request) if callable(item) else item

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]
