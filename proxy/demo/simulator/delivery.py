"""Sending answers the way a real (or a failing) provider does.

Streams go out frame by frame with optional pacing, and may be cut mid-way;
held answers (model latency, the ``timeout`` fault) wait for either the time
to pass or the client to go away, and a client that leaves early is counted.
Dropping a connection without an answer needs the server's transport, which
the outer ASGI wrapper puts in the scope under ``TRANSPORT_KEY``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

TRANSPORT_KEY = "simulator.transport"


def transport_of(send: Send) -> asyncio.BaseTransport | None:
    """The socket transport behind uvicorn's ``send``, when it exposes one."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


async def drop_connection(scope: Scope) -> None:
    """Close the client's connection at once, whatever was sent so far."""
    transport = scope.get(TRANSPORT_KEY)
    if not isinstance(transport, asyncio.Transport):
        # Without the transport, failing the app makes the server close the
        # connection (mid-stream) or answer a bare 500 (before the answer).
        raise ConnectionAbortedError("simulated disconnect")
    transport.abort()
    # Let the server see the connection is gone before the app returns, so it
    # does not try to answer on it.
    for _ in range(3):
        await asyncio.sleep(0)


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def finish_unless_gone(work: Awaitable[None], receive: Receive, stop: asyncio.Event) -> bool:
    """Run ``work``; ``False`` if the client left (or the server stopped) first."""
    task = asyncio.ensure_future(work)
    watchers = {
        asyncio.ensure_future(_wait_disconnect(receive)),
        asyncio.ensure_future(stop.wait()),
    }
    try:
        await asyncio.wait({task, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for watcher in watchers:
            watcher.cancel()
    if task.done():
        task.result()  # re-raise what the work raised
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


class FrameStream(Response):
    """An SSE answer sent frame by frame.

    ``chunk_delay_s`` paces the frames; ``first_delay_s`` holds the first one
    (time to first token); ``cut_after`` drops the connection after that many
    frames. ``on_cancel`` is called when the client leaves before the end.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: list[bytes],
        *,
        stop: asyncio.Event,
        on_cancel: Callable[[], None],
        headers: Mapping[str, str] | None = None,
        first_delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        cut_after: int | None = None,
    ) -> None:
        # No body is rendered up front, so no content-length: the stream is chunked.
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", **(headers or {})})
        self._frames = frames
        self._stop = stop
        self._on_cancel = on_cancel
        self._first_delay_s = first_delay_s
        self._chunk_delay_s = chunk_delay_s
        self._cut_after = cut_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cut = False

        async def produce() -> None:
            nonlocal cut
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self._first_delay_s:
                await asyncio.sleep(self._first_delay_s)
            for index, frame in enumerate(self._frames):
                if index == self._cut_after:
                    cut = True
                    await drop_connection(scope)
                    return
                if index and self._chunk_delay_s:
                    await asyncio.sleep(self._chunk_delay_s)
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        finished = await finish_unless_gone(produce(), receive, self._stop)
        if not finished and not cut:
            self._on_cancel()


class CutBody(Response):
    """A JSON answer whose connection drops half-way through its body."""

    def __init__(self, body: bytes, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(
            content=body, status_code=200, media_type="application/json", headers=headers
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        await drop_connection(scope)


class Dropped(Response):
    """No answer at all: the connection closes before a status line."""

    def __init__(self) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drop_connection(scope)


def status_recorder(send: Send, record: Callable[[int], None]) -> Send:
    """Wrap ``send`` to report the status of the answer it starts."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            record(int(message["status"]))
        await send(message)

    return wrapped
