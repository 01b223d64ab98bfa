"""Request translation, whole answers and error mapping of the Anthropic provider."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from anthropic.types import (
    ImageBlockParam,
    Message,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from openai.types.chat import ChatCompletion

from pricing.usage import Usage
from proxy.errors import (
    RequestError,
    UpstreamProtocolError,
    UpstreamStatusError,
    error_body,
    is_retryable,
)
from proxy.providers.anthropic import ANTHROPIC_VERSION, AnthropicProvider, messages_url
from proxy.providers.base import ProviderSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"
KEY = "sk-ant-api03-test-key-0123456789abcdef"
CLIENT_KEY = "sk-ant-client-key-9876543210"


def provider(**overrides: Any) -> AnthropicProvider:
    fields: dict[str, Any] = {
        "name": "anthropic",
        "type": "anthropic",
        "base_url": "https://api.anthropic.com",
        "api_key": KEY,
    }
    fields.update(overrides)
    return AnthropicProvider(ProviderSettings(**fields), default_max_tokens=1024)


@dataclass
class Call:
    """A chat request as a provider reads it (the pipeline hands it its exchange)."""

    body: dict[str, Any]
    raw: bytes = b"{}"
    client_key: str | None = None


def translate(body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    request = provider().build_chat_request(
        Call(body, json.dumps(body).encode()), upstream_model="claude-sonnet-4-5", stream=stream
    )
    out = json.loads(request.content)
    assert isinstance(out, dict)
    return out


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


HI = [user("Hi")]

# --- system prompts and turns ---------------------------------------------------------

TURN_CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        "single system string",
        [{"role": "system", "content": "Be brief."}, user("Hi")],
        [text("Be brief.")],
        [{"role": "user", "content": [text("Hi")]}],
    ),
    (
        "system, developer and text parts, even mid-conversation, keep their order",
        [
            {"role": "system", "content": "One."},
            {"role": "developer", "content": [text("Two."), text("Three.")]},
            user("Hi"),
            {"role": "system", "content": "Four."},
        ],
        [text("One."), text("Two."), text("Three."), text("Four.")],
        [{"role": "user", "content": [text("Hi")]}],
    ),
    (
        "multi-turn conversation",
        [user("Hi"), {"role": "assistant", "content": "Hello!"}, user("Bye")],
        [],
        [
            {"role": "user", "content": [text("Hi")]},
            {"role": "assistant", "content": [text("Hello!")]},
            {"role": "user", "content": [text("Bye")]},
        ],
    ),
    (
        "consecutive same-role messages merge",
        [
            user("a"),
            user([text("b")]),
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": [text("d")]},
        ],
        [],
        [
            {"role": "user", "content": [text("a"), text("b")]},
            {"role": "assistant", "content": [text("c"), text("d")]},
        ],
    ),
    (
        "empty text is left out and an empty turn disappears",
        [user("a"), {"role": "assistant", "content": ""}, user([text(""), text("b")])],
        [],
        [{"role": "user", "content": [text("a"), text("b")]}],
    ),
]


@pytest.mark.parametrize(
    ("messages", "system", "turns"),
    [case[1:] for case in TURN_CASES],
    ids=[case[0] for case in TURN_CASES],
)
def test_system_and_turns(
    messages: list[dict[str, Any]], system: list[dict[str, Any]], turns: list[dict[str, Any]]
) -> None:
    out = translate({"model": "claude", "messages": messages})
    assert out.get("system", []) == system
    assert out["messages"] == turns


def test_request_basics() -> None:
    out = translate({"model": "claude-alias", "messages": HI})
    assert out == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [text("Hi")]}],
    }


# --- images -----------------------------------------------------------------------------

IMAGE_CASES = [
    (
        "https://example.com/cat.png",
        {"type": "url", "url": "https://example.com/cat.png"},
    ),
    (
        "data:image/png;base64,iVBORw0KGgo=",
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    ),
    (
        "data:image/webp;base64,UklGRg==",
        {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="},
    ),
]


@pytest.mark.parametrize(("url", "source"), IMAGE_CASES)
def test_images(url: str, source: dict[str, Any]) -> None:
    part = {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
    out = translate({"messages": [user([text("What is this?"), part])]})
    image = out["messages"][0]["content"][1]
    assert image == {"type": "image", "source": source}
    pydantic.TypeAdapter(ImageBlockParam).validate_python(image)


@pytest.mark.parametrize(
    "url",
    ["data:image/bmp;base64,Qk0=", "data:image/png,rawbytes", "data:image/png;base64"],
)
def test_unsupported_image_data_urls_are_rejected(url: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    with pytest.raises(RequestError) as caught:
        translate({"messages": [user([part])]})
    assert caught.value.param == "messages[0].content[0].image_url"


def test_cache_control_on_parts_is_kept() -> None:
    marker = {"type": "ephemeral"}
    system = {"role": "system", "content": [{**text("Long context"), "cache_control": marker}]}
    out = translate({"messages": [system, user([{**text("Hi"), "cache_control": marker}])]})
    assert out["system"] == [{**text("Long context"), "cache_control": marker}]
    assert out["messages"][0]["content"] == [{**text("Hi"), "cache_control": marker}]


# --- tools ------------------------------------------------------------------------------

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"location": {"type": "string"}},
    "required": ["location"],
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS},
}


def test_tools_become_input_schemas() -> None:
    bare = {"type": "function", "function": {"name": "now", "strict": True}}
    out = translate({"messages": HI, "tools": [WEATHER, bare]})
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_PARAMS},
        {"name": "now", "input_schema": {"type": "object"}, "strict": True},
    ]
    assert "tool_choice" not in out
    for tool in out["tools"]:
        pydantic.TypeAdapter(ToolParam).validate_python(tool)


TOOL_CHOICE_CASES: list[tuple[Any, Any, dict[str, Any] | None]] = [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    (
        {"type": "function", "function": {"name": "get_weather"}},
        None,
        {"type": "tool", "name": "get_weather"},
    ),
    (None, None, None),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    ("auto", True, {"type": "auto"}),
]


@pytest.mark.parametrize(("choice", "parallel", "expected"), TOOL_CHOICE_CASES)
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"messages": HI, "tools": [WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out = translate(body)
    assert out.get("tool_choice") == expected
    if expected is not None:
        pydantic.TypeAdapter(ToolChoiceParam).validate_python(expected)


def test_tool_choice_without_tools_is_dropped() -> None:
    out = translate({"messages": HI, "tool_choice": "required", "parallel_tool_calls": False})
    assert "tool_choice" not in out
    assert "tools" not in out


def test_tool_calls_and_results_round_trip() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
    ]
    messages = [
        user("Weather in Paris, and the time?"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [text("12:00")]},
        user("Thanks"),
    ]
    out = translate({"messages": messages, "tools": [WEATHER]})
    assistant, results = out["messages"][1], out["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"location": "Paris"},
            },
            {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [text("12:00")]},
            text("Thanks"),
        ],
    }
    assert len(out["messages"]) == 3
    for block in assistant["content"]:
        pydantic.TypeAdapter(ToolUseBlockParam).validate_python(block)
    for block in results["content"][:2]:
        pydantic.TypeAdapter(ToolResultBlockParam).validate_python(block)


# --- sampling and other parameters ------------------------------------------------------

PARAM_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("stop string", {"stop": "END"}, {"stop_sequences": ["END"]}),
    ("stop list", {"stop": ["END", "STOP"]}, {"stop_sequences": ["END", "STOP"]}),
    ("max_tokens", {"max_tokens": 50}, {"max_tokens": 50}),
    (
        "max_completion_tokens wins",
        {"max_tokens": 50, "max_completion_tokens": 70},
        {"max_tokens": 70},
    ),
    ("temperature kept", {"temperature": 0.3}, {"temperature": 0.3}),
    ("temperature clamped high", {"temperature": 1.7}, {"temperature": 1.0}),
    ("temperature clamped low", {"temperature": -0.5}, {"temperature": 0.0}),
    ("top_p alone", {"top_p": 0.9}, {"top_p": 0.9}),
    ("temperature beats top_p", {"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2}),
    ("user", {"user": "user-42"}, {"metadata": {"user_id": "user-42"}}),
    ("safety_identifier", {"safety_identifier": "h-1"}, {"metadata": {"user_id": "h-1"}}),
    (
        "json_schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": WEATHER_PARAMS},
            }
        },
        {"output_config": {"format": {"type": "json_schema", "schema": WEATHER_PARAMS}}},
    ),
    ("text format", {"response_format": {"type": "text"}}, {}),
]


@pytest.mark.parametrize(
    ("params", "expected"), [c[1:] for c in PARAM_CASES], ids=[c[0] for c in PARAM_CASES]
)
def test_parameters(params: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate({"messages": HI, **params})
    base = {"model", "messages", "max_tokens"}
    extra = {k: v for k, v in out.items() if k not in base or k in expected}
    assert extra == expected
    if "top_p" not in expected:
        assert "top_p" not in out


def test_json_object_adds_a_system_instruction() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HI]
    out = translate({"messages": messages, "response_format": {"type": "json_object"}})
    assert out["system"][0] == text("Be brief.")
    assert "JSON" in out["system"][1]["text"]
    assert "output_config" not in out


def test_stream_flag_follows_the_argument() -> None:
    assert translate({"messages": HI}, stream=True)["stream"] is True
    assert "stream" not in translate({"messages": HI, "stream": True}, stream=False)


DROPPED = {
    "frequency_penalty": 0.5,
    "presence_penalty": 0.5,
    "logit_bias": {"50256": -100},
    "seed": 7,
    "service_tier": "auto",
    "store": True,
    "metadata": {"team": "a"},
    "stream_options": {"include_usage": True},
    "reasoning_effort": "low",
    "n": 1,
    "logprobs": False,
}


def test_parameters_without_an_equivalent_are_dropped() -> None:
    out = translate({"messages": HI, **DROPPED})
    assert out == translate({"messages": HI})


REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    (
        {
            "messages": [
                user([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}])
            ]
        },
        "messages[0].content[0].type",
    ),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{bad"},
                        }
                    ],
                }
            ]
        },
        "messages[0].tool_calls[0].function.arguments",
    ),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ({"messages": []}, "messages"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
    ({"response_format": {"type": "grammar"}}, "response_format"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
]


@pytest.mark.parametrize(("params", "param"), REJECTED)
def test_unsupported_requests_are_rejected_naming_the_parameter(
    params: dict[str, Any], param: str
) -> None:
    with pytest.raises(RequestError) as caught:
        translate({"messages": HI, **params})
    assert caught.value.param == param
    assert caught.value.http_status == 400


# --- URL and headers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    [
        "https://api.anthropic.com",
        "https://api.anthropic.com/",
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com/v1/",
    ],
)
def test_messages_url(base: str) -> None:
    assert messages_url(base) == "https://api.anthropic.com/v1/messages"


def test_gateway_prefix_is_kept() -> None:
    assert (
        messages_url("https://gw.example/anthropic/") == "https://gw.example/anthropic/v1/messages"
    )


def build_headers(
    client_key: str | None = None, **overrides: Any
) -> tuple[dict[str, str], bytes, str]:
    request = provider(**overrides).build_chat_request(
        Call({"messages": HI}, client_key=client_key), upstream_model="m", stream=False
    )
    assert request.method == "POST"
    return request.headers, request.content, request.url


def test_headers_carry_the_configured_key_only_in_x_api_key() -> None:
    headers, content, url = build_headers(client_key=CLIENT_KEY)
    assert headers == {
        "x-api-key": KEY,
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    assert KEY.encode() not in content
    assert KEY not in url


def test_client_key_is_forwarded_when_configured() -> None:
    headers, _, _ = build_headers(client_key=CLIENT_KEY, forward_client_key=True)
    assert headers["x-api-key"] == CLIENT_KEY
    headers, _, _ = build_headers(client_key=None, forward_client_key=True)
    assert headers["x-api-key"] == KEY


def test_configured_headers_are_added() -> None:
    extra = {"anthropic-beta": "context-1m-2025-08-07", "Anthropic-Version": "2099-01-01"}
    headers, _, _ = build_headers(headers=extra)
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert headers["anthropic-version"] == "2099-01-01"
    assert headers["x-api-key"] == KEY


# --- whole answers ----------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", ["text_response.json", "tool_use_response.json"])
def test_fixtures_are_valid_anthropic_messages(name: str) -> None:
    message = Message.model_validate_json(fixture(name))
    assert message.type == "message"


def test_text_answer() -> None:
    result = provider().parse_chat_response(fixture("text_response.json"), model="gpt-4o")
    completion = ChatCompletion.model_validate_json(result.body)
    assert json.loads(result.body) == result.parsed
    assert completion.id == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
    assert completion.model == "gpt-4o"
    assert isinstance(completion.created, int)
    choice = completion.choices[0]
    assert choice.message.content == "Hello! How can I help you today?"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert result.usage == Usage(
        prompt_tokens=2112,
        completion_tokens=25,
        cached_prompt_tokens=2000,
        cache_creation_tokens=100,
        reasoning_tokens=9,
        source="upstream",
    )
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2112, 25, 2137)
    assert usage.prompt_tokens_details.cached_tokens == 2000
    assert usage.prompt_tokens_details.cache_write_tokens == 100
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 9


def test_tool_use_answer() -> None:
    result = provider().parse_chat_response(fixture("tool_use_response.json"), model="m")
    completion = ChatCompletion.model_validate(result.parsed)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather in both cities."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type) for c in calls] == [
        ("toolu_01A09q90qw90lq917835lq9", "function"),
        ("toolu_01B7pq2k3n4m5l6k7j8h9g0f", "function"),
    ]
    first = calls[0]
    assert first.type == "function"
    assert first.function.name == "get_weather"
    assert first.function.arguments == '{"location":"San Francisco, CA","unit":"celsius"}'
    assert result.usage == Usage(prompt_tokens=472, completion_tokens=91)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 3, "output_tokens": 0},
    }
    result = provider().parse_chat_response(json.dumps(message).encode(), model="m")
    completion = ChatCompletion.model_validate(result.parsed)
    assert completion.choices[0].finish_reason == finish
    assert completion.choices[0].message.content is None


@pytest.mark.parametrize(
    "content",
    [b"<html>bad gateway</html>", b"[1, 2]", b'{"type": "message", "content": []}', b""],
)
def test_unreadable_answers_raise_protocol_errors(content: bytes) -> None:
    with pytest.raises(UpstreamProtocolError) as caught:
        provider(name="claude-direct").parse_chat_response(content, model="m")
    assert caught.value.provider == "claude-direct"
    assert caught.value.message.startswith("claude-direct: ")


# --- errors -----------------------------------------------------------------------------

ERROR_CASES: list[tuple[int, str, str, str | None, int, bool]] = [
    (400, "invalid_request_error", "invalid_request_error", None, 400, False),
    (401, "authentication_error", "authentication_error", "invalid_api_key", 401, False),
    (402, "billing_error", "insufficient_quota", "insufficient_quota", 402, False),
    (403, "permission_error", "permission_error", None, 403, False),
    (404, "not_found_error", "not_found_error", None, 404, False),
    (409, "conflict_error", "invalid_request_error", "conflict", 409, False),
    (413, "request_too_large", "invalid_request_error", "request_too_large", 413, False),
    (429, "rate_limit_error", "rate_limit_error", "rate_limit_exceeded", 429, True),
    (500, "api_error", "server_error", None, 502, True),
    (504, "timeout_error", "server_error", "timeout", 502, True),
    (529, "overloaded_error", "server_error", "overloaded", 502, True),
]


@pytest.mark.parametrize(
    ("status", "anthropic_type", "openai_type", "code", "client_status", "retryable"),
    ERROR_CASES,
)
def test_map_error(
    status: int,
    anthropic_type: str,
    openai_type: str,
    code: str | None,
    client_status: int,
    retryable: bool,
) -> None:
    body = {
        "type": "error",
        "error": {"type": anthropic_type, "message": "Something specific"},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    error = provider().map_error(status, json.dumps(body).encode(), {})
    assert isinstance(error, UpstreamStatusError)
    assert error.provider == "anthropic"
    assert error.upstream_status == status
    assert error.error_type == openai_type
    assert error.code == code
    assert error.message == "anthropic: Something specific"
    assert error.http_status == client_status
    assert is_retryable(error) is retryable
    rendered = json.loads(error_body(error))["error"]
    assert rendered["message"] == "anthropic: Something specific"
    if client_status < 500:
        assert rendered["type"] == openai_type


def test_retry_after_header_is_read() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    error = provider().map_error(429, body, {"Retry-After": "17"})
    assert error.retry_after_s == 17.0
    assert error.headers == {"retry-after": "17"}
    assert (
        provider()
        .map_error(429, body, {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"})
        .retry_after_s
        is None
    )
    assert provider().map_error(429, body, {}).retry_after_s is None


@pytest.mark.parametrize(
    ("status", "content"),
    [(502, b"<html>Bad Gateway</html>"), (413, b""), (400, b'{"error": "plain string"}')],
)
def test_unreadable_error_bodies_still_name_the_provider(status: int, content: bytes) -> None:
    error = provider(name="claude-eu").map_error(status, content, {})
    assert error.message == f"claude-eu: HTTP {status} with an unreadable error body"
    assert error.upstream_status == status
    assert error.provider == "claude-eu"


def test_api_key_never_appears_in_errors() -> None:
    echoed = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"},
    }
    errors = [
        provider().map_error(401, json.dumps(echoed).encode(), {"x-api-key": KEY}),
        provider().map_error(500, b"oops", {}),
    ]
    for error in errors:
        assert KEY not in str(error)
        assert KEY.encode() not in error_body(error)
        assert KEY not in repr(error.__dict__)
    assert errors[0].message == "anthropic: invalid x-api-key [redacted]"


# --- over HTTP --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_request_sent_through_httpx_reaches_the_messages_endpoint() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=fixture("tool_use_response.json"))

    anthropic = provider(base_url="https://api.anthropic.com/v1/")
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, user("Weather?")],
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_tokens": 99,
    }
    upstream = anthropic.build_chat_request(
        Call(body, json.dumps(body).encode()), upstream_model="claude-haiku-4-5", stream=False
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        response = await client.request(
            upstream.method, upstream.url, headers=upstream.headers, content=upstream.content
        )
    assert len(seen) == 1
    sent = seen[0]
    assert str(sent.url) == "https://api.anthropic.com/v1/messages"
    assert sent.method == "POST"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert json.loads(sent.content) == {
        "model": "claude-haiku-4-5",
        "max_tokens": 99,
        "system": [text("Be brief.")],
        "messages": [{"role": "user", "content": [text("Weather?")]}],
        "tools": [
            {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_PARAMS}
        ],
        "tool_choice": {"type": "any"},
    }
    result = anthropic.parse_chat_response(response.content, model="gpt-4o")
    assert result.parsed["choices"][0]["finish_reason"] == "tool_calls"
