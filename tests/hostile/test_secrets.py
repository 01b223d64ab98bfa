"""No upstream key and no proxy key ever shows in a log line, an answer or a metric."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.ops.access_log import ACCESS_LOGGER
from tests.hostile.support import ANTHROPIC_KEY, UPSTREAM_KEY, healthy_upstream
from tests.proxy.support import make_settings, proxy_client

PROXY_KEY = "sk-proxy-secret-tenant-a-77"
ADMIN_KEY = "sk-admin-secret-99"
SECRETS = (UPSTREAM_KEY, ANTHROPIC_KEY, PROXY_KEY, ADMIN_KEY)

pytestmark = pytest.mark.anyio


def echoing_upstream(request: httpx.Request) -> httpx.Response:
    """A hostile or buggy upstream: errors that repeat the credentials it was sent."""
    credential = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
    body = json.loads(request.content)
    prompt = json.dumps(body.get("messages") or body.get("input") or "")
    anthropic = request.url.path.endswith("/messages")
    if "echo-401" in prompt:
        status = 401
    elif "echo-400" in prompt:
        status = 400
    elif "echo-500" in prompt:
        status = 500
    elif "echo-429" in prompt:
        status = 429
    elif "timeout" in prompt:
        raise httpx.ReadTimeout("timed out", request=request)
    elif "refused" in prompt:
        raise httpx.ConnectError(f"refused while sending {credential}", request=request)
    elif "echo-stream" in prompt and body.get("stream"):
        frame = {"error": {"message": f"bad key {credential}", "type": "invalid_request_error"}}
        return httpx.Response(
            200,
            content=f"data: {json.dumps(frame)}\n\n".encode(),
            headers={"content-type": "text/event-stream"},
        )
    else:
        return healthy_upstream(request)
    message = f"Incorrect API key provided: {credential}. You sent: {dict(request.headers)}"
    if anthropic:
        error: dict[str, Any] = {
            "type": "error",
            "error": {"type": "authentication_error", "message": message},
        }
    else:
        error = {"error": {"message": message, "type": "invalid_request_error", "code": credential}}
    return httpx.Response(status, json=error, headers={"x-echo": credential})


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    access = logging.getLogger(ACCESS_LOGGER)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=ACCESS_LOGGER)
    access.addHandler(caplog.handler)  # the access logger may not propagate to the root
    try:
        yield caplog
    finally:
        access.removeHandler(caplog.handler)


SCENARIOS = [
    "hello",
    "echo-401",
    "echo-400",
    "echo-500",
    "echo-429",
    "timeout",
    "refused",
    "echo-stream",
]


async def test_keys_appear_in_no_log_answer_or_metric(
    captured: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        auth={"admin_key": ADMIN_KEY, "keys": [{"key": PROXY_KEY, "tenant": "a"}]},
        routing={"max_attempts": 2, "retry_base_s": 0, "retry_cap_s": 0, "breaker_failures": 1000},
        server={"log_content": True},
    )
    seen: list[str] = []
    async with proxy_client(echoing_upstream, settings) as client:
        headers = {"authorization": f"Bearer {PROXY_KEY}"}
        for model in ("gpt-4o", "claude-sonnet"):
            for scenario in SCENARIOS:
                for stream in (False, True):
                    body = {
                        "model": model,
                        "stream": stream,
                        "messages": [{"role": "user", "content": f"{scenario} {model} {stream}"}],
                    }
                    reply = await client.post("/v1/chat/completions", json=body, headers=headers)
                    label = f"[{model} {scenario} stream={stream} -> {reply.status_code}]"
                    seen.append(label)
                    seen.append(f"{label} {reply.text}".replace("\n", " "))
                    seen.append(f"{label} {json.dumps(dict(reply.headers))}")
            for path in ("/v1/embeddings", "/v1/responses"):
                reply = await client.post(
                    path, json={"model": model, "input": "echo-401"}, headers=headers
                )
                label = f"[{model} {path} -> {reply.status_code}]"
                seen.extend([f"{label} {reply.text}", f"{label} {json.dumps(dict(reply.headers))}"])
        for bad in (b"{", b"[]", b'{"model": 3}'):
            reply = await client.post("/v1/chat/completions", content=bad, headers=headers)
            seen.append(reply.text)
        wrong = {"authorization": f"Bearer {PROXY_KEY}x"}
        reply = await client.post("/v1/chat/completions", json=body, headers=wrong)
        seen.append(reply.text)
        metrics = await client.get("/metrics")
        seen.append(metrics.text)
        admin = await client.get(
            "/admin/export.csv", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        seen.append(admin.text)
    logs = "\n".join(
        [captured.text]
        + [r.getMessage() for r in captured.records]
        + [repr(r.args) for r in captured.records]
        + [repr(r.exc_info[1]) for r in captured.records if r.exc_info]
    )
    everything = "\n".join(seen) + "\n" + logs
    # scenarios ran; a 401 for the proxy's own provider key reaches the client as a 502
    assert any("echo-401" in line and "-> 502" in line for line in seen)
    leaks = {
        secret: [line[:120] for line in everything.splitlines() if secret in line]
        for secret in SECRETS
        if secret in everything
    }
    assert not leaks, (
        json.dumps(leaks, indent=1) + "\n" + "\n".join(s for s in seen if s.endswith("]"))
    )
