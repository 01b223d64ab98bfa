"""Every bad input and upstream failure gets OpenAI's error shape and the right status."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio

OK = Recorder(httpx.Response(200, json=completion()))
MSGS = [{"role": "user", "content": "hi"}]


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    assert "sk-upstream-secret" not in response.text and "sk-ant-secret" not in response.text
    return error


@pytest.mark.parametrize(
    ("content", "param", "fragment"),
    [
        (b'{"model": "gpt-4o", "messages": [', None, "not valid JSON"),
        (b"", None, "empty"),
        (b'["a list"]', None, "JSON object"),
        (b'{"model": "gpt-4o"}', "messages", "'messages' is required"),
        (b'{"model": "gpt-4o", "messages": "hi"}', "messages", "non-empty array"),
        (b'{"model": "gpt-4o", "messages": ["hi"]}', "messages[0]", "must be an object"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}',
            "messages[0].role",
            "role",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}',
            "messages[0].content",
            "content",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "'model' is required"),
        (
            b'{"model": "gpt-4o", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}',
            "stream",
            "boolean",
        ),
        (
            b'{"model": "gpt-4o", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}',
            "max_tokens",
            "positive",
        ),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    content: bytes, param: str | None, fragment: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    async with proxy_client(recorder) as client:
        response = await client.post("/v1/chat/completions", content=content)
    error = assert_error_shape(response, 400)
    assert error["param"] == param and fragment in error["message"]
    assert error["type"] == "invalid_request_error"
    assert recorder.requests == []


async def test_unknown_model_is_404_listing_the_available_ones() -> None:
    async with proxy_client(OK) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-9", "messages": MSGS}
        )
    error = assert_error_shape(response, 404)
    assert (
        error["code"] == "model_not_found"
        and "gpt-4o-mini" in error["message"]
        and "auto" in error["message"]
    )


async def test_body_over_the_limit_is_413() -> None:
    settings = make_settings(server={"max_body_bytes": 1000})
    async with proxy_client(OK, settings) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 2000}]},
        )
    assert_error_shape(response, 413)


async def test_missing_or_wrong_proxy_key_is_401() -> None:
    digest = hashlib.sha256(b"team-b-key").hexdigest()
    settings = make_settings(
        auth={
            "keys": [
                {"key": "team-a-key", "tenant": "team-a"},
                {"key_sha256": digest, "tenant": "team-b"},
            ]
        }
    )
    body = {"model": "gpt-4o", "messages": MSGS}
    async with proxy_client(Recorder(httpx.Response(200, json=completion())), settings) as client:
        missing = await client.post("/v1/chat/completions", json=body)
        wrong = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer nope"}
        )
        plain = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer team-a-key"}
        )
        hashed = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer team-b-key"}
        )
        models = await client.get("/v1/models")
    assert_error_shape(missing, 401)
    assert_error_shape(wrong, 401)
    assert_error_shape(models, 401)
    assert plain.status_code == 200 and hashed.status_code == 200


async def test_upstream_4xx_passes_through_with_status_and_message() -> None:
    upstream = {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    async with proxy_client(Recorder(httpx.Response(400, json=upstream))) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": MSGS}
        )
    error = assert_error_shape(response, 400)
    assert error == upstream["error"]


@pytest.mark.parametrize("status", [500, 503])
async def test_upstream_5xx_is_502_naming_the_provider(status: int) -> None:
    settings = make_settings(routing={"max_attempts": 1})
    async with proxy_client(Recorder(httpx.Response(status, text="boom")), settings) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": MSGS}
        )
    error = assert_error_shape(response, 502)
    assert "openai" in error["message"]


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.ConnectError("refused"), 502, "upstream_unreachable"),
    ],
)
async def test_transport_failures_are_502_or_504(exc: Exception, status: int, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    settings = make_settings(routing={"max_attempts": 1})
    async with proxy_client(handler, settings) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": MSGS}
        )
    error = assert_error_shape(response, status)
    assert error["code"] == code and "openai" in error["message"]


async def test_malformed_upstream_json_is_502() -> None:
    settings = make_settings(routing={"max_attempts": 1})
    async with proxy_client(Recorder(httpx.Response(200, text="{not json")), settings) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": MSGS}
        )
    assert assert_error_shape(response, 502)["code"] == "upstream_bad_response"


async def test_unknown_path_and_wrong_method_use_the_error_shape() -> None:
    async with proxy_client(OK) as client:
        missing = await client.get("/v1/nope")
        method = await client.get("/v1/chat/completions")
    assert_error_shape(missing, 404)
    assert_error_shape(method, 405)


async def test_per_key_rate_limit_is_429_with_retry_after() -> None:
    settings = make_settings(auth={"keys": [{"key": "k1", "tenant": "t", "rpm": 2}]})
    recorder = Recorder(httpx.Response(200, json=completion()))
    async with proxy_client(recorder, settings) as client:
        codes = []
        for i in range(3):
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"n{i}"}]},
                headers={"authorization": "Bearer k1"},
            )
            codes.append(response.status_code)
    assert codes == [200, 200, 429]
    error = assert_error_shape(response, 429)
    assert (
        error["code"] == "rate_limit_exceeded" and 1 <= int(response.headers["retry-after"]) <= 60
    )


async def test_request_headers_cannot_inject_response_headers() -> None:
    async with proxy_client(Recorder(httpx.Response(200, json=completion()))) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": MSGS},
            headers={"x-spendgate-agent": b"a\xc2\x85x-injected: 1", "x-spendgate-route": "off"},
        )
    assert response.status_code == 200
    assert "x-injected" not in response.headers
