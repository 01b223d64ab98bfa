"""A hostile or broken upstream: odd Retry-After values and bodies still give the client a clean answer."""

from __future__ import annotations

import httpx
import pytest

from tests.hostile.support import Upstream, assert_openai_error
from tests.proxy.support import make_settings, proxy_client

pytestmark = pytest.mark.anyio

RETRY_AFTER = ["inf", "-inf", "nan", "1e400", "-5", "99999999999999999999", "Wed, 21 Oct 2015", ""]


@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
@pytest.mark.parametrize("value", RETRY_AFTER)
@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet"])
async def test_odd_retry_after_values_never_become_a_server_error(
    header: str, value: str, model: str
) -> None:
    error = {"error": {"message": "slow down", "type": "rate_limit_error"}}
    upstream = Upstream(lambda request: httpx.Response(429, json=error, headers={header: value}))
    settings = make_settings(routing={"max_attempts": 1, "breaker_failures": 1000})
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with proxy_client(upstream, settings) as client:
        reply = await client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 429, reply.text
    assert_openai_error(reply.status_code, reply.content)
    retry_after = reply.headers.get("retry-after")
    assert retry_after is None or retry_after.isdigit(), retry_after
