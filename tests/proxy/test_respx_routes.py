"""The gateway against respx-routed upstreams: each provider gets the right request."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from proxy.server.app import create_app
from tests.proxy.support import completion, make_settings

pytestmark = pytest.mark.anyio

ANTHROPIC_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Bonjour"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "output_tokens": 3,
        "cache_read_input_tokens": 10,
        "cache_creation_input_tokens": 0,
    },
}


async def test_each_model_reaches_its_provider_with_its_own_key() -> None:
    router = respx.Router(assert_all_called=True)
    openai_route = router.post("https://api.openai.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=completion("Hello"))
    )
    anthropic_route = router.post("https://api.anthropic.test/v1/messages").mock(
        return_value=httpx.Response(200, json=ANTHROPIC_ANSWER)
    )
    app = create_app(
        make_settings(), transport_factory=lambda limits: httpx.MockTransport(router.handler)
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://proxy") as client,
    ):
        gpt = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": messages}
        )
        claude = await client.post(
            "/v1/chat/completions",
            json={"model": "claude-sonnet", "messages": messages, "max_tokens": 50},
        )

    assert openai_route.call_count == 1 and anthropic_route.call_count == 1
    assert openai_route.calls.last.request.headers["authorization"] == "Bearer sk-upstream-secret"
    sent = anthropic_route.calls.last.request
    assert sent.headers["x-api-key"] == "sk-ant-secret" and "authorization" not in sent.headers
    assert json.loads(sent.content)["system"] in (
        "Be brief.",
        [{"type": "text", "text": "Be brief."}],
    )
    assert json.loads(sent.content)["model"] == "claude-sonnet-4-5"
    assert gpt.json()["choices"][0]["message"]["content"] == "Hello"
    answer = claude.json()
    assert answer["choices"][0]["message"]["content"] == "Bonjour"
    assert answer["choices"][0]["finish_reason"] == "stop"
    # Anthropic's input_tokens exclude cache reads: prompt_tokens = 20 + 10, of which 10 cached.
    assert answer["usage"]["prompt_tokens"] == 30
    assert answer["usage"]["prompt_tokens_details"]["cached_tokens"] == 10
    assert claude.headers["x-spendgate-provider"] == "anthropic"
