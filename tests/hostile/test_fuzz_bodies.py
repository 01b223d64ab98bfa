"""Arbitrary and malicious request bodies: a 2xx or an OpenAI-shaped 4xx, never a 5xx or a hang."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.support import SyncProxy, assert_client_outcome, running_proxy
from tests.proxy.support import make_settings

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/chat/completions")
KNOWN_FIELDS = (
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "metadata",
    "temperature",
    "tools",
    "user",
    "input",
)
MODELS = ("gpt-4o", "gpt-4o-mini", "fast", "claude-sonnet", "auto", "text-embedding-3-small")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def proxy() -> Iterator[SyncProxy]:
    with running_proxy(make_settings()) as running:
        yield running


def valid_body(model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


def post(proxy: SyncProxy, content: bytes, path: str = "/v1/chat/completions") -> None:
    reply = proxy.request(
        "POST", path, content=content, headers={"content-type": "application/json"}
    )
    assert_client_outcome(reply)


@FUZZ
@given(body=json_values, path=st.sampled_from(PATHS))
def test_any_json_document_is_answered_without_a_server_error(
    proxy: SyncProxy, body: Any, path: str
) -> None:
    post(proxy, json.dumps(body).encode(), path)


@FUZZ
@given(
    field=st.sampled_from(KNOWN_FIELDS),
    value=json_values,
    model=st.sampled_from(MODELS),
    path=st.sampled_from(PATHS),
)
def test_a_wrong_type_in_any_known_field_is_a_client_error_at_worst(
    proxy: SyncProxy, field: str, value: Any, model: str, path: str
) -> None:
    body = valid_body(model)
    body["input"] = "hello"
    body[field] = value
    post(proxy, json.dumps(body).encode(), path)


@FUZZ
@given(
    index=st.integers(min_value=0, max_value=2),
    key=st.sampled_from(("role", "content", "name", "tool_calls", "tool_call_id")),
    value=json_values,
    model=st.sampled_from(MODELS),
    stream=st.booleans(),
)
def test_a_wrong_type_inside_a_message_is_a_client_error_at_worst(
    proxy: SyncProxy, index: int, key: str, value: Any, model: str, stream: bool
) -> None:
    body = valid_body(model)
    body["messages"] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None},
    ]
    body["messages"][index][key] = value
    body["stream"] = stream
    post(proxy, json.dumps(body).encode())


@FUZZ
@given(depth=st.integers(min_value=900, max_value=20_000), opener=st.sampled_from("[{"))
def test_deep_nesting_is_a_400_not_a_recursion_error(
    proxy: SyncProxy, depth: int, opener: str
) -> None:
    inner = ("[" * depth + "]" * depth) if opener == "[" else ('{"a":' * depth + "1" + "}" * depth)
    text = f'{{"model":"gpt-4o","messages":[{{"role":"user","content":"x","extra":{inner}}}]}}'
    post(proxy, text.encode())


def test_nesting_just_under_the_parsers_limit_is_answered(proxy: SyncProxy) -> None:
    # Where the parser gives up depends on the stack in use, so sweep the band around it:
    # a body the parser accepted must not overflow a later stage (cache key, tokenizer).
    for depth in range(800, 1001, 3):
        for inner in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            text = f'{{"model":"gpt-4o","messages":[{{"role":"user","content":"x","x":{inner}}}]}}'
            reply = proxy.request("POST", "/v1/chat/completions", content=text.encode())
            assert reply.status < 500, (depth, inner[:1], reply.body)
            assert_client_outcome(reply)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_message_content_is_answered(proxy: SyncProxy, depth: int) -> None:
    content = "[" * depth + "]" * depth
    text = f'{{"model":"gpt-4o","messages":[{{"role":"user","content":{content}}}]}}'
    reply = proxy.request(
        "POST",
        "/v1/chat/completions",
        content=text.encode(),
        headers={"content-type": "application/json"},
    )
    assert reply.status == 400
    assert_client_outcome(reply)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_answered_without_a_server_error(proxy: SyncProxy, raw: bytes) -> None:
    post(proxy, raw)


@FUZZ
@given(
    bad=st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]),
    where=st.sampled_from(("content", "model", "key")),
)
def test_invalid_utf8_inside_a_body_is_a_400(proxy: SyncProxy, bad: bytes, where: str) -> None:
    content, model, key = b"hello", b"gpt-4o", b"role"
    if where == "content":
        content = b"he" + bad + b"llo"
    elif where == "model":
        model = b"gpt" + bad
    else:
        key = b"ro" + bad
    raw = (
        b'{"model":"' + model + b'","messages":[{"' + key + b'":"user","content":"'
        + content + b'"}]}'
    )  # fmt: skip
    reply = proxy.request(
        "POST", "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert reply.status == 400, reply.body
    assert_client_outcome(reply)


@pytest.mark.parametrize(
    "content",
    [
        "\\ud800",  # a lone surrogate: valid JSON, not encodable as UTF-8
        "\\udfff tail",
        "a\\u0000b",
        "\\ud83d\\ude00 ok pair",
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_escaped_surrogates_and_nul_are_answered(
    proxy: SyncProxy, content: str, stream: bool
) -> None:
    text = (
        f'{{"model":"gpt-4o","stream":{json.dumps(stream)},'
        f'"messages":[{{"role":"user","content":"{content}"}}]}}'
    )
    reply = proxy.request(
        "POST",
        "/v1/chat/completions",
        content=text.encode(),
        headers={"content-type": "application/json"},
    )
    assert_client_outcome(reply)


@pytest.mark.parametrize(
    "raw",
    [
        b"null",
        b"true",
        b"0",
        b"-1e400",
        b'"a string"',
        b"[]",
        b'[{"model":"gpt-4o"}]',
        b"",
        b"   ",
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":NaN}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":Infinity}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":' + b"9" * 5000 + b"}",
        b'{"model":"gpt-4o","model":["dup"],"messages":[{"role":"user","content":"hi"}]}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]} trailing',
        b'\xef\xbb\xbf{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":"true"}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"metadata":"x"}',
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_scalars_arrays_and_odd_documents_are_answered(
    proxy: SyncProxy, raw: bytes, path: str
) -> None:
    reply = proxy.request("POST", path, content=raw, headers={"content-type": "application/json"})
    assert_client_outcome(reply)
    if not raw.strip().startswith((b"{", b"\xef\xbb\xbf")):
        assert reply.status == 400


@pytest.mark.parametrize("size", [200_000, 2_000_000])
def test_huge_messages_are_answered(proxy: SyncProxy, size: int) -> None:
    body = valid_body()
    body["messages"] = [{"role": "user", "content": "word " * (size // 5)}] + [
        {"role": "user", "content": "x"} for _ in range(2000)
    ]
    post(proxy, json.dumps(body).encode())


def test_a_body_over_the_limit_is_a_413(proxy: SyncProxy) -> None:
    raw = (
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + b"a" * (11 * 2**20) + b'"}]}'
    )
    reply = proxy.request(
        "POST", "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert reply.status == 413
    assert_client_outcome(reply)
