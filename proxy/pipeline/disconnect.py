"""Noticing a client that has gone away, without a task group per request.

A client that gives up on an answer closes its connection; nothing else tells
the proxy. While ``DisconnectWatch`` is entered, a watcher task waits on the
ASGI ``receive`` channel, which yields ``http.disconnect`` when the
connection closes, and then cancels the task that entered it:

* ``unless_disconnected``: the upstream call of a whole (non-streaming)
  answer is cancelled, its upstream connection closed with it, and the
  request is recorded as 499;
* ``EventStreamResponse``: a stream stops being read from upstream once the
  client has left (``proxy.pipeline.relay`` records it as 499).

The cancellation is a plain ``Task.cancel()``, taken back on the way out,
rather than an anyio cancel scope or task group: those cost more than the
rest of the watcher, on every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import TypeVar

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from proxy.errors import ClientDisconnectedError

T = TypeVar("T")


class DisconnectWatch:
    """While entered, cancels the entering task when the client disconnects.

    On exit, that cancellation is swallowed (and taken back), and ``gone``
    tells whether it happened. Enter it only once the request body has been
    read: the watcher consumes ``receive``.
    """

    __slots__ = ("_receive", "_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False

    async def __aenter__(self) -> DisconnectWatch:
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("DisconnectWatch needs a running task")
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                assert self._task is not None
                self._task.cancel()
                return

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._watcher is not None and self._task is not None
        self._watcher.cancel()
        if not self.gone:
            return False  # a cancellation from elsewhere (shutdown) goes on
        # Take back our cancel, so that nothing later in this task sees it pending
        # (asyncio.timeout counts pending cancellations).
        self._task.uncancel()
        return exc_type is asyncio.CancelledError


async def unless_disconnected(receive: Receive, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``, cancelled if the client disconnects first.

    Raises ``ClientDisconnectedError`` when it was.
    """
    async with DisconnectWatch(receive):
        return await work()
    raise ClientDisconnectedError("the client closed the connection before its answer")


class EventStreamResponse(Response):
    """A streamed body, sent as it is produced, and stopped when the client leaves.

    Starlette's ``StreamingResponse`` does the same with an anyio task group
    per response; this one uses a ``DisconnectWatch``. When the client
    leaves, the body's iterator is closed (its ``finally`` runs).
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.media_type = media_type
        self.background: BackgroundTask | None = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body_iterator
        try:
            async with DisconnectWatch(receive):
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": self.raw_headers,
                    }
                )
                async for chunk in body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()  # a no-op once the body is exhausted
