"""One JSON access line per request, with no secret and no prompt by default."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from proxy.ops.access_log import ACCESS_LOGGER
from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


async def test_one_json_line_per_request_without_content_or_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(auth={"keys": [{"key": "sg-very-secret", "tenant": "acme"}]})
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    prompt = "my confidential prompt text"
    async with proxy_client(Recorder(httpx.Response(200, json=completion())), settings) as client:
        ok = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]},
            headers={"authorization": "Bearer sg-very-secret", "x-spendgate-agent": "bot"},
        )
        bad = await client.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": [{"role": "user", "content": prompt}]},
            headers={"authorization": "Bearer sg-very-secret"},
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [line["request_id"] for line in lines] == [
        ok.headers["x-spendgate-request-id"],
        bad.headers["x-spendgate-request-id"],
    ]
    assert lines[0]["tenant"] == "acme" and lines[0]["agent"] == "bot" and lines[0]["status"] == 200
    assert lines[1]["status"] == 404
    text = caplog.text
    assert prompt not in text and "sg-very-secret" not in text and "sk-upstream-secret" not in text


async def test_log_content_adds_the_messages(caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(server={"log_content": True})
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with proxy_client(Recorder(httpx.Response(200, json=completion())), settings) as client:
        await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "visible"}]},
        )
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    assert line["messages"] == [{"role": "user", "content": "visible"}]


def test_batched_handler_writes_whole_lines_in_batches() -> None:
    import io

    from proxy.ops.access_log import BatchedLineHandler

    stream = io.StringIO()
    handler = BatchedLineHandler(stream, max_lines=3, max_delay_s=3600)
    logger = logging.getLogger("test.batched")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(4):
            logger.info('{"n":%d}', i)
        assert stream.getvalue() == '{"n":0}\n{"n":1}\n{"n":2}\n'  # the fourth waits for a flush
        handler.flush()
        assert stream.getvalue().splitlines() == ['{"n":0}', '{"n":1}', '{"n":2}', '{"n":3}']
    finally:
        logger.removeHandler(handler)
