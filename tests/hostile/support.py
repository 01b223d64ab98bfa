"""An in-process proxy reachable from synchronous code, and the checks every answer must pass.

Hypothesis drives synchronous test functions, so the app runs on an event
loop in a blocking portal (one lifespan for many examples); each request is
bounded with ``anyio.fail_after`` so a hang fails the example instead of the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from proxy.server.app import create_app
from proxy.settings import Settings
from tests.proxy.support import completion

REQUEST_TIMEOUT_S = 10.0
UPSTREAM_KEY = "sk-upstream-secret"
ANTHROPIC_KEY = "sk-ant-secret"


def sse_completion(model: str = "gpt-4o") -> bytes:
    """A short OpenAI chat-completion stream with usage."""
    frames = [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
        },
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        },
    ]
    text = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
    return text.encode()


def anthropic_message() -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }


def anthropic_stream() -> bytes:
    """A short Anthropic Messages stream."""
    events = [
        ("message_start", {"type": "message_start", "message": {**anthropic_message(),
            "content": [], "stop_reason": None}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def healthy_upstream(request: httpx.Request) -> httpx.Response:
    """Answers every API the proxy forwards to with a small valid body."""
    path = request.url.path
    try:
        body = json.loads(request.content or b"{}")
    except (ValueError, RecursionError):  # hostile bodies reach here too
        body = {}
    stream = isinstance(body, dict) and body.get("stream") is True
    if path.endswith("/messages"):
        if stream:
            return httpx.Response(
                200, content=anthropic_stream(), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json=anthropic_message())
    if path.endswith("/embeddings"):
        data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
        usage = {"prompt_tokens": 2, "total_tokens": 2}
        return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})
    if path.endswith("/responses"):
        return httpx.Response(
            200,
            json={
                "id": "resp_1",
                "object": "response",
                "status": "completed",
                "output": [],
                "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
            },
        )
    if stream:
        return httpx.Response(
            200, content=sse_completion(), headers={"content-type": "text/event-stream"}
        )
    return httpx.Response(200, json=completion())


@dataclass
class Upstream:
    """A MockTransport handler that records every request it gets."""

    handler: Callable[[httpx.Request], httpx.Response] = healthy_upstream
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


@dataclass
class Reply:
    """What a client saw: enough to check, without holding the connection."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SyncProxy:
    """The in-process proxy, called from synchronous code through a portal."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    upstream: Upstream
    app: Any

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | list[tuple[bytes, bytes]] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Reply:
        async def call() -> Reply:
            with anyio.fail_after(timeout_s):
                response = await self.client.request(method, path, content=content, headers=headers)
                return Reply(response.status_code, response.headers, response.content)

        return self.portal.call(call)


@contextmanager
def running_proxy(settings: Settings, upstream: Upstream | None = None) -> Iterator[SyncProxy]:
    """The app with its lifespan entered, on a portal's event loop."""
    upstream = upstream or Upstream()
    app = create_app(settings, transport_factory=lambda limits: httpx.MockTransport(upstream))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://proxy")
        try:
            yield SyncProxy(portal, client, upstream, app)
        finally:
            portal.call(client.aclose)


def assert_openai_error(status: int, body: bytes) -> dict[str, Any]:
    """``body`` is OpenAI's error shape; returns its ``error`` object."""
    payload = json.loads(body)
    assert isinstance(payload, dict) and set(payload) == {"error"}, payload
    error = payload["error"]
    assert isinstance(error, dict), payload
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    return error


def assert_client_outcome(reply: Reply) -> None:
    """A 2xx, or a 4xx in OpenAI's error shape: never a 5xx."""
    assert reply.status < 500, (reply.status, reply.body[:500])
    if reply.status >= 400:
        assert reply.status < 500
        assert reply.headers.get("content-type", "").startswith("application/json")
        assert_openai_error(reply.status, reply.body)
