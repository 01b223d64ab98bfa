"""Schemathesis against the proxy's own OpenAPI document, in process.

Cases come from each operation's positive and negative strategies; each is
sent to the app (lifespan entered once, upstreams mocked) and checked: never
a server error, and every answer conforms to the document (so every 4xx is
OpenAI's error shape).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.support import Reply, SyncProxy, assert_client_outcome, running_proxy
from tests.proxy.support import make_settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/models"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
SCHEMA_RUN = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def proxy() -> Iterator[SyncProxy]:
    with running_proxy(make_settings()) as running:
        yield running


@pytest.fixture(scope="module")
def schema(proxy: SyncProxy) -> Any:
    document = proxy.request("GET", "/openapi.json").json()
    assert {path for _, path in OPERATIONS} <= set(document["paths"])
    return schemathesis.openapi.from_dict(document)


def send(proxy: SyncProxy, case: Any) -> Reply:
    kwargs = case.as_transport_kwargs(base_url="http://proxy")
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    content = kwargs.get("data")
    if content is None and kwargs.get("json") is not None:
        import json

        content = json.dumps(kwargs["json"]).encode()
    if isinstance(content, str):
        content = content.encode()
    return proxy.request(
        kwargs["method"], kwargs["url"].removeprefix("http://proxy"), content=content,
        headers=headers,
    )  # fmt: skip


# An operation with no parameters and no body has no negative cases to make.
RUNS = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST"
]


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
def test_operations_conform_to_the_document(
    proxy: SyncProxy, schema: Any, method: str, path: str, mode: Any
) -> None:
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)

    @SCHEMA_RUN
    @given(case=strategy, _=st.just(None))
    def run(case: Any, _: None) -> None:
        reply = send(proxy, case)
        assert_client_outcome(reply)
        response = _as_httpx(reply, case)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


def _as_httpx(reply: Reply, case: Any) -> Any:
    import httpx

    kwargs = case.as_transport_kwargs(base_url="http://proxy")
    request = httpx.Request(kwargs["method"], kwargs["url"])
    response = httpx.Response(
        reply.status, headers=reply.headers, content=reply.body, request=request
    )
    response.elapsed = timedelta(0)
    return response
