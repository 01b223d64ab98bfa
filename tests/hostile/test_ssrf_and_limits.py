"""A client cannot choose where the proxy sends a request; per-key limits answer 429."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hostile.support import Upstream, assert_openai_error
from tests.proxy.support import make_settings, proxy_client

pytestmark = pytest.mark.anyio

ALLOWED = {
    ("api.openai.test", "/v1/chat/completions"),
    ("api.openai.test", "/v1/embeddings"),
    ("api.openai.test", "/v1/responses"),
    ("api.anthropic.test", "/v1/messages"),
}
EVIL = "http://169.254.169.254/latest/meta-data"
BODY_OVERRIDES: dict[str, Any] = {
    "base_url": EVIL,
    "api_base": EVIL,
    "baseURL": EVIL,
    "url": EVIL,
    "endpoint": EVIL,
    "provider": {"base_url": EVIL, "type": "openai"},
    "extra_headers": {"host": "evil.test"},
    "extra_query": {"redirect": EVIL},
}
HEADER_OVERRIDES = {
    "x-spendgate-base-url": EVIL,
    "x-spendgate-provider": "evil",
    "x-spendgate-upstream": EVIL,
    "x-forwarded-host": "evil.test",
    "x-forwarded-proto": "gopher",
    "forwarded": "host=evil.test;proto=http",
    "x-original-url": EVIL,
    "x-rewrite-url": EVIL,
    "openai-base-url": EVIL,
    "host": "evil.test",
}
MODELS = (
    "gpt-4o",
    "claude-sonnet",
    "auto",
    "text-embedding-3-small",
    EVIL,
    "../../../latest/meta-data",
    "gpt-4o/../../evil",
    "gpt-4o@evil.test",
    "//evil.test/x",
    "gpt-4o?x=http://evil.test",
    "gpt-4o#frag",
    "gpt-4o\r\nHost: evil.test",
)


def assert_only_configured_upstreams(upstream: Upstream) -> None:
    for request in upstream.requests:
        assert (request.url.host, request.url.path) in ALLOWED, request.url
        assert request.url.scheme == "https"
        assert request.url.port is None
        assert not request.url.query
        assert request.headers["host"] in {"api.openai.test", "api.anthropic.test"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"])
async def test_no_body_field_header_or_model_name_redirects_the_upstream_call(
    model: str, path: str
) -> None:
    upstream = Upstream()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "input": "hi",
        **BODY_OVERRIDES,
    }
    async with proxy_client(upstream, make_settings()) as client:
        for stream in (False, True):
            reply = await client.post(
                path, content=json.dumps({**body, "stream": stream}), headers=HEADER_OVERRIDES
            )
            assert reply.status_code < 500, reply.text
    assert_only_configured_upstreams(upstream)
    if model == "gpt-4o" or (model == "claude-sonnet" and path == "/v1/chat/completions"):
        assert upstream.requests, "a valid request reached no upstream: the check saw nothing"


async def test_client_headers_are_not_forwarded_to_the_upstream() -> None:
    upstream = Upstream()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    async with proxy_client(upstream, make_settings()) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json=body,
            headers={**HEADER_OVERRIDES, "authorization": "Bearer client-key"},
        )
    assert reply.status_code == 200
    (sent,) = upstream.requests
    assert sent.headers["authorization"] == "Bearer sk-upstream-secret"
    for name in HEADER_OVERRIDES:
        if name != "host":
            assert name not in sent.headers, name


def limited_settings(**limits: int) -> Any:
    keys = [
        {"key": "sk-limited", "tenant": "a", "name": "limited", **limits},
        {"key": "sk-free", "tenant": "a", "name": "free"},
    ]
    return make_settings(auth={"keys": keys})


async def post_as(client: Any, key: str, content: str = "hi") -> Any:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    return await client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )


def assert_rate_limited(reply: Any) -> None:
    assert reply.status_code == 429, reply.text
    error = assert_openai_error(reply.status_code, reply.content)
    assert error["type"] == "rate_limit_error"
    retry_after = reply.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60


async def test_requests_per_minute_are_limited_per_key() -> None:
    upstream = Upstream()
    async with proxy_client(upstream, limited_settings(rpm=2)) as client:
        replies = [await post_as(client, "sk-limited", f"m{i}") for i in range(3)]
        free = [await post_as(client, "sk-free", f"f{i}") for i in range(3)]
    assert [r.status_code for r in replies[:2]] == [200, 200]
    assert_rate_limited(replies[2])
    assert all(r.status_code == 200 for r in free)
    assert len(upstream.requests) == 5  # the refused request never reached the upstream


async def test_tokens_per_minute_are_limited_per_key() -> None:
    upstream = Upstream()
    async with proxy_client(upstream, limited_settings(tpm=100)) as client:
        small = await post_as(client, "sk-limited", "short")
        big = await post_as(client, "sk-limited", "x" * 2000)
        free = await post_as(client, "sk-free", "x" * 2000)
    assert small.status_code == 200
    assert_rate_limited(big)
    assert free.status_code == 200
