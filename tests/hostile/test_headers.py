"""Odd request headers: answered in OpenAI's error shape, and never echoed into response headers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.support import SyncProxy, assert_client_outcome, running_proxy
from tests.proxy.support import make_settings

PROXY_KEY = "sk-proxy-tenant-a"
BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}).encode()
HEADERS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Every header the proxy may set itself; anything else in an answer came from somewhere else.
OWN_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "cache-control",
        "x-accel-buffering",
        "retry-after",
        "x-spendgate-request-id",
        "x-spendgate-model",
        "x-spendgate-provider",
        "x-spendgate-cache",
        "x-spendgate-cache-similarity",
        "x-spendgate-route-reason",
        "x-spendgate-cost-usd",
        "x-spendgate-baseline-usd",
        "x-spendgate-savings-usd",
    }
)
INJECTED = "x-injected"
HEADER_NAMES = (
    "authorization",
    "x-api-key",
    "api-key",
    "content-type",
    "content-length",
    "cache-control",
    "x-spendgate-agent",
    "x-spendgate-workflow",
    "x-spendgate-step",
    "x-spendgate-run",
    "x-spendgate-route",
    "x-spendgate-cache",
    "x-spendgate-request-id",
    "x-spendgate-model",
    "x-request-id",
    "accept",
    "accept-encoding",
    "cookie",
)
INJECTIONS = (
    "a\r\nx-injected: 1",
    "a\nx-injected: 1",
    "a\rx-injected: 1",
    "a%0d%0ax-injected:%201",
    "a%0D%0Ax-injected: 1",
    "a\\r\\nx-injected: 1",
    "a\x00x-injected: 1",
    "\u2028x-injected: 1",
    "a\u0085x-injected: 1",
    "\x1b[31mred\x7f",
)


@pytest.fixture(scope="module")
def open_proxy() -> Iterator[SyncProxy]:
    with running_proxy(make_settings()) as running:
        yield running


@pytest.fixture(scope="module")
def keyed_proxy() -> Iterator[SyncProxy]:
    auth = {"keys": [{"key": PROXY_KEY, "tenant": "a"}]}
    with running_proxy(make_settings(auth=auth)) as running:
        yield running


def assert_no_injection(headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        assert name.decode("latin-1").lower() in OWN_HEADERS, (name, value)
        text = value.decode("latin-1")
        assert all(ch.isprintable() for ch in text), (name, value)
        assert INJECTED not in text.lower() or name.lower() != INJECTED.encode()


header_values = st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b)
header_lists = st.lists(
    st.tuples(st.sampled_from(HEADER_NAMES).map(str.encode), header_values), max_size=8
)


@HEADERS
@given(headers=header_lists, keyed=st.booleans(), with_key=st.booleans())
def test_arbitrary_header_values_are_answered(
    open_proxy: SyncProxy,
    keyed_proxy: SyncProxy,
    headers: list[tuple[bytes, bytes]],
    keyed: bool,
    with_key: bool,
) -> None:
    proxy = keyed_proxy if keyed else open_proxy
    if with_key:
        headers = [(b"authorization", f"Bearer {PROXY_KEY}".encode()), *headers]
    headers = [(n, v) for n, v in headers if n != b"content-length"]
    reply = proxy.request("POST", "/v1/chat/completions", content=BODY, headers=headers)
    assert_client_outcome(reply)
    assert_no_injection(reply.headers.raw)


@pytest.mark.parametrize(
    "name", [n for n in HEADER_NAMES if n not in ("content-type", "content-length")]
)
@pytest.mark.parametrize("value", INJECTIONS)
def test_control_characters_never_make_a_response_header(
    open_proxy: SyncProxy, name: str, value: str
) -> None:
    raw = [(name.encode(), value.encode("utf-8"))]
    reply = open_proxy.request("POST", "/v1/chat/completions", content=BODY, headers=raw)
    assert_client_outcome(reply)
    assert_no_injection(reply.headers.raw)


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_through_the_model_name_never_makes_a_response_header(
    open_proxy: SyncProxy, value: str
) -> None:
    body = json.dumps({"model": value, "messages": [{"role": "user", "content": "x"}]})
    reply = open_proxy.request("POST", "/v1/chat/completions", content=body.encode())
    assert_client_outcome(reply)
    assert_no_injection(reply.headers.raw)


@pytest.mark.parametrize("length", [8 * 1024, 64 * 1024, 1024 * 1024])
def test_very_long_headers_are_answered(keyed_proxy: SyncProxy, length: int) -> None:
    headers = [
        (b"authorization", b"Bearer " + b"k" * length),
        (b"x-spendgate-agent", b"a" * length),
        (b"x-custom", b"v" * length),
    ]
    reply = keyed_proxy.request("POST", "/v1/chat/completions", content=BODY, headers=headers)
    assert reply.status == 401
    assert_client_outcome(reply)


@pytest.mark.parametrize(
    "auth",
    [
        [(b"authorization", b"Bearer " + PROXY_KEY.encode()), (b"authorization", b"Bearer bad")],
        [(b"authorization", b"Bearer bad"), (b"authorization", b"Bearer " + PROXY_KEY.encode())],
        [(b"authorization", b"Bearer bad"), (b"x-api-key", PROXY_KEY.encode())],
        [(b"authorization", b"Basic " + PROXY_KEY.encode())],
        [(b"authorization", b"Bearer")],
        [(b"authorization", b"Bearer  \t ")],
        [(b"authorization", b"bearer " + PROXY_KEY.upper().encode())],
        [(b"authorization", ("Bearer " + PROXY_KEY + "\u00e9").encode("latin-1"))],
        [(b"authorization", b"Bearer \xff\xfe")],
        [(b"x-api-key", b"")],
        [(b"api-key", b"\x00")],
    ],
)
def test_duplicate_and_malformed_auth_headers_are_answered(
    keyed_proxy: SyncProxy, auth: list[tuple[bytes, bytes]]
) -> None:
    reply = keyed_proxy.request("POST", "/v1/chat/completions", content=BODY, headers=auth)
    assert reply.status in (200, 401), reply.body
    assert_client_outcome(reply)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-16",
        "application/json; charset=\x01",
        "",
        "*/*",
        "application/json" + ";a=b" * 2000,
    ],
)
def test_weird_content_types_are_answered(open_proxy: SyncProxy, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode("latin-1"))]
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/models"):
        method = "GET" if path == "/v1/models" else "POST"
        reply = open_proxy.request(method, path, content=BODY, headers=headers)
        assert_client_outcome(reply)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/../admin/summary", "/v1/%00"])
def test_wrong_methods_and_paths_are_openai_shaped(
    open_proxy: SyncProxy, method: str, path: str
) -> None:
    reply = open_proxy.request(method, path)
    assert 400 <= reply.status < 500, (reply.status, reply.body)
    if method != "HEAD":
        assert_client_outcome(reply)


TAGS = ("x-spendgate-agent", "x-spendgate-workflow", "x-spendgate-step", "x-spendgate-run")


@pytest.mark.parametrize("name", TAGS)
def test_a_tag_over_256_characters_is_refused_naming_its_header(
    open_proxy: SyncProxy, name: str
) -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/responses"):
        reply = open_proxy.request(
            "POST", path, content=BODY, headers=[(name.encode(), b"t" * 300)]
        )
        assert reply.status == 400, (path, reply.status, reply.body)
        error = json.loads(reply.body)["error"]
        assert error["param"] == name and error["code"] == "tag_too_long"
        assert name in error["message"] and "256" in error["message"]


def test_a_tag_of_256_characters_is_kept_whole(open_proxy: SyncProxy) -> None:
    reply = open_proxy.request(
        "POST", "/v1/chat/completions", content=BODY, headers=[(b"x-spendgate-agent", b"t" * 256)]
    )
    assert reply.status == 200, reply.body


def test_a_long_tag_in_metadata_is_refused_naming_the_field(open_proxy: SyncProxy) -> None:
    body = json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
         "metadata": {"workflow": "w" * 257}}
    ).encode()  # fmt: skip
    reply = open_proxy.request("POST", "/v1/chat/completions", content=body)
    assert reply.status == 400
    assert json.loads(reply.body)["error"]["param"] == "metadata.workflow"
