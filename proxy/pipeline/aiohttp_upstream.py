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
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from aiohttp import ClientResponse, ClientSession, ClientTimeout
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions
from yarl import URL

from proxy.providers.base import UpstreamRequest

_HTTP_11 = {"http_version": b"HTTP/1.1"}


class AiohttpUpstream(AiohttpTransport):
    """``AiohttpTransport`` plus a direct path for :class:`UpstreamRequest`."""

    def __init__(self, *, limits: httpx.Limits, trust_env: bool) -> None:
        super().__init__(limits=limits, trust_env=trust_env)
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[float | None, ...], ClientTimeout] = {}

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
