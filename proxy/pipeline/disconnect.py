"""Cancelling the upstream call of a client that has gone away.

A client that gives up on a whole (non-streaming) answer closes its
connection; nothing else tells the proxy. While the upstream call runs, a
watcher waits on the ASGI ``receive`` channel, which yields
``http.disconnect`` when the connection closes; the call is then cancelled,
its upstream connection closed with it, and the request is recorded as 499.
A stream needs no watcher once it has started: the server stops iterating it
when the client leaves (``proxy.pipeline.relay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.types import Receive

from proxy.errors import ClientDisconnectedError

T = TypeVar("T")


async def unless_disconnected(receive: Receive, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``, cancelled if the client disconnects first.

    Raises ``ClientDisconnectedError`` when it was. Call it only once the
    request body has been read: the watcher consumes ``receive``.
    """
    scope = anyio.CancelScope()
    watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(receive, scope))
    try:
        with scope:
            return await work()
    finally:
        watcher.cancel()
    raise ClientDisconnectedError("the client closed the connection before its answer")


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
