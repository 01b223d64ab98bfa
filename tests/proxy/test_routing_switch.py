"""When routing is on: what loads the scorer, and what ``model: auto`` gets when it is off."""

from __future__ import annotations

import httpx
import pytest

from proxy.server.assembly import routes_requests
from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio

UNTIERED = [{"name": "gpt-4o", "provider": "openai"}]


@pytest.mark.parametrize(
    ("overrides", "on"),
    [
        ({}, True),  # auto-only by default, with tiered models
        ({"routing": {"mode": "off"}}, False),
        ({"routing": {"mode": "off"}, "tenants": {"t": {"routing_mode": "downgrade"}}}, True),
        (
            {
                "routing": {"mode": "off"},
                "auth": {"keys": [{"key": "k", "tenant": "t", "routing_mode": "auto-only"}]},
            },
            True,
        ),
        ({"models": UNTIERED}, False),
    ],
)
def test_routing_is_on_with_a_tiered_model_and_a_mode_that_is_not_off(
    overrides: dict[str, object], on: bool
) -> None:
    assert routes_requests(make_settings(**overrides)) is on


async def test_auto_with_routing_off_is_a_clear_error_and_never_reaches_upstream() -> None:
    recorder = Recorder(httpx.Response(200, json=completion("x")))
    settings = make_settings(routing={"mode": "off"})
    async with proxy_client(recorder, settings) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
        named = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model" and "routing.mode is off" in error["message"]
    assert named.status_code == 200
    assert len(recorder.requests) == 1
