"""The default upstream transport: aiohttp, reached without building httpx requests.

``httpx_aiohttp.AiohttpTransport`` adapts every request twice: an
``httpx.Request`` is built, then turned back into aiohttp's arguments (the URL
re-parsed, the headers copied, a timeout object made), and the answer is read
through several layers of async iterators. :class:`AiohttpUpstream` keeps
that transport for anything handed to it as an ``httpx.Request``, and adds
the path ``proxy.pipeline.upstream`` uses: the provider's request as it is, parsed URLs
and timeouts kept per endpoint, the body read in one call. The answer is the
same ``httpx.Response`` (content decoding by httpx, exceptions mapped by the
same table), so nothing above this module can tell the paths apart.

A request that meets a server closing an idle pooled connection (its
keep-alive timeout running out as the request goes out: uvicorn's is 5 s,
ours 60 s) is sent once more, at once, on another connection, instead of
costing a retry attempt, a backoff and a circuit-breaker failure. Only a
pooled connection closed with no answer is taken this way, and only once: a
fresh connection closed unanswered is a failure for the retry loop, which
would send the request again too.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from ssl import SSLContext

import httpx
from aiohttp import (
    ClientConnectorError,
    ClientOSError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    ServerDisconnectedError,
    TCPConnector,
)
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions
from yarl import URL

from proxy.providers.base import UpstreamRequest

_HTTP_11 = {"http_version": b"HTTP/1.1"}

# Whether the request the current task is sending went out on a connection that
# had carried an earlier one. Set by the connector, read by the sender: both run
# in the same task, so the variable needs no locking and no cleanup.
_REUSED: ContextVar[bool] = ContextVar("spendgate_upstream_reused", default=False)


class _PoolConnector(TCPConnector):
    """A ``TCPConnector`` that notes whether each connection it hands out is pooled."""

    def __init__(self, *, keepalive_timeout: float | None, ssl: SSLContext, limit: int) -> None:
        super().__init__(keepalive_timeout=keepalive_timeout, ssl=ssl, limit=limit)
        self._used: weakref.WeakSet[ResponseHandler] = weakref.WeakSet()

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: ClientTimeout
    ) -> Connection:
        conn = await super().connect(req, traces, timeout)
        proto = conn.protocol
        if proto is not None:
            _REUSED.set(proto in self._used)
            self._used.add(proto)
        return conn


class AiohttpUpstream(AiohttpTransport):
    """``AiohttpTransport`` plus a direct path for :class:`UpstreamRequest`."""

    def __init__(self, *, limits: httpx.Limits, trust_env: bool) -> None:
        super().__init__(limits=limits, trust_env=trust_env, client=self._new_session)
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[float | None, ...], ClientTimeout] = {}

    def _new_session(self) -> ClientSession:
        # As AiohttpTransport.get_client builds it, with the connector above.
        connector = _PoolConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 100,
        )
        return ClientSession(connector=connector)

    def _session(self) -> ClientSession:
        if not isinstance(self.client, ClientSession):
            self.client = self.get_client()
        return self.client

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = URL(url)
        return parsed

    def _timeout(self, timeout: Mapping[str, float]) -> ClientTimeout:
        # The same fields, from the same httpx-style mapping, as AiohttpTransport.
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        made = self._timeouts.get(key)
        if made is None:
            made = self._timeouts[key] = ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return made

    async def _start(
        self, request: UpstreamRequest, timeout: Mapping[str, float]
    ) -> ClientResponse:
        with map_aiohttp_exceptions():
            try:
                return await self._send(request, timeout)
            except (ServerDisconnectedError, ClientOSError) as exc:
                # Closed with nothing sent back: on a pooled connection that is the
                # server's idle timeout, not an answer. On a fresh one it is a failure.
                if isinstance(exc, ClientConnectorError) or not _REUSED.get():
                    raise
            return await self._send(request, timeout)

    async def _send(self, request: UpstreamRequest, timeout: Mapping[str, float]) -> ClientResponse:
        return await self._session().request(
            request.method,
            self._url(request.url),
            headers=request.headers,
            data=request.content or None,
            allow_redirects=False,
            auto_decompress=False,
            compress=False,
            timeout=self._timeout(timeout),
        )

    async def fetch(
        self, request: UpstreamRequest, *, timeout: Mapping[str, float]
    ) -> httpx.Response:
        """Send and read the whole answer (decoded by httpx, as ``aread`` would)."""
        response = await self._start(request, timeout)
        try:
            with map_aiohttp_exceptions():
                body = await response.read()
        finally:
            response.release()
        return httpx.Response(
            response.status, headers=response.raw_headers, content=body, extensions=_HTTP_11
        )

    async def open(
        self, request: UpstreamRequest, *, timeout: Mapping[str, float]
    ) -> httpx.Response:
        """Send and return once the headers are in; the caller reads and closes the body."""
        response = await self._start(request, timeout)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            extensions=_HTTP_11,
        )
