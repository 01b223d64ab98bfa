"""A client that leaves before its whole answer cancels the upstream call; it is recorded as 499."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import httpx
import pytest

from proxy.errors import ClientDisconnectedError
from proxy.pipeline.disconnect import EventStreamResponse, unless_disconnected
from proxy.server.app import create_app
from tests.proxy.support import completion, make_settings

pytestmark = pytest.mark.anyio


async def test_a_disconnect_cancels_the_work() -> None:
    gone = asyncio.Event()
    cancelled = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def work() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    with anyio.fail_after(5):
        task = asyncio.create_task(unless_disconnected(receive, work))
        await asyncio.sleep(0.01)
        gone.set()
        with pytest.raises(ClientDisconnectedError) as caught:
            await task
    assert cancelled.is_set()
    assert caught.value.http_status == 499


async def test_work_that_finishes_first_is_returned_and_the_watch_ends() -> None:
    receiving = asyncio.Event()
    stopped = asyncio.Event()

    async def receive() -> dict[str, Any]:
        receiving.set()
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()
        return {"type": "http.disconnect"}

    async def work() -> str:
        await receiving.wait()
        return "answer"

    with anyio.fail_after(5):
        assert await unless_disconnected(receive, work) == "answer"
        await stopped.wait()


async def test_after_a_disconnect_the_task_has_no_cancellation_left() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def work() -> str:
        await asyncio.sleep(30)
        return "never"

    async def request() -> int:
        with pytest.raises(ClientDisconnectedError):
            await unless_disconnected(receive, work)
        task = asyncio.current_task()
        assert task is not None
        # The watcher's cancel was taken back: later awaits and timeouts in this task work.
        async with asyncio.timeout(1):
            await asyncio.sleep(0.01)
        return task.cancelling()

    with anyio.fail_after(5):
        assert await asyncio.create_task(request()) == 0


async def _stream(sent: list[bytes], closed: asyncio.Event) -> Any:
    try:
        for i in range(1000):
            sent.append(b"%d" % i)
            yield b"data: %d\n\n" % i
            await asyncio.sleep(0.005)
    finally:
        closed.set()


async def test_a_stream_stops_being_read_when_its_client_leaves() -> None:
    leave = asyncio.Event()
    messages: list[dict[str, Any]] = []
    sent: list[bytes] = []
    closed = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if len(messages) == 4:  # the head and three chunks, then the client is gone
            leave.set()

    response = EventStreamResponse(_stream(sent, closed), media_type="text/event-stream")
    with anyio.fail_after(5):
        await response({"type": "http"}, receive, send)
    assert closed.is_set()
    assert messages[0]["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream; charset=utf-8") in messages[0]["headers"]
    assert 4 <= len(messages) < 10 and len(sent) < 10
    assert all(m.get("more_body") for m in messages[1:])  # no end-of-body for a gone client


async def test_a_whole_stream_is_sent_and_ended() -> None:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    async def body() -> Any:
        for chunk in (b"a", b"b", b"c"):
            yield chunk

    with anyio.fail_after(5):
        await EventStreamResponse(body())({"type": "http"}, receive, send)
    assert [m.get("body") for m in messages[1:]] == [b"a", b"b", b"c", b""]
    assert messages[-1]["more_body"] is False


class HangingUpstream(httpx.AsyncBaseTransport):
    """An upstream that never answers; notes when its caller gives up."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return httpx.Response(200, json=completion())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True}),
        ("/v1/embeddings", {"input": "hi"}),
        ("/v1/responses", {"input": "hi"}),
    ],
)
async def test_a_client_that_leaves_cancels_the_upstream_call(
    path: str, body: dict[str, Any]
) -> None:
    upstream = HangingUpstream()
    model = "text-embedding-3-small" if path == "/v1/embeddings" else "gpt-4o"
    app = create_app(make_settings(), transport_factory=lambda limits: upstream)
    content = json.dumps({"model": model, **body}).encode()
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if received == 1:
            return {"type": "http.request", "body": content, "more_body": False}
        await upstream.started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080),
    }  # fmt: skip
    async with app.router.lifespan_context(app):
        with anyio.fail_after(5):
            await app(scope, receive, send)
        assert upstream.cancelled.is_set()
        metrics = app.state.runtime.metrics.render().decode()
    endpoint = path.rsplit("/", 1)[-1].replace("completions", "chat")
    line = next(
        (x for x in metrics.splitlines() if 'status="499"' in x and f'endpoint="{endpoint}"' in x),
        None,
    )
    assert line is not None and line.endswith(" 1.0"), metrics
