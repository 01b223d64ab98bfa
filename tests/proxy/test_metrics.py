"""What /metrics shows after requests: counts, retries, route decisions."""

from __future__ import annotations

import httpx
import pytest

from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


async def test_a_retried_request_is_counted_once_with_one_retry() -> None:
    recorder = Recorder(httpx.Response(500, text="boom"), httpx.Response(200, json=completion()))
    settings = make_settings(routing={"retry_base_s": 0, "retry_cap_s": 0})
    async with proxy_client(recorder, settings) as client:
        ok = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "retry me"}]},
        )
        text = (await client.get("/metrics")).text
    assert ok.status_code == 200 and len(recorder.requests) == 2
    assert 'spendgate_retries_total{provider="openai"} 1.0' in text
    assert (
        'spendgate_requests_total{endpoint="chat",model="gpt-4o",provider="openai",status="200"} 1.0'
        in text
    )
