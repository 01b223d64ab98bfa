"""Pooled HTTP clients to the providers, and the one boundary for their errors.

One ``httpx.AsyncClient`` per provider, with keep-alive, created in the app's
lifespan and closed with it. The transport is a setting: ``aiohttp`` (the
default, through ``httpx-aiohttp``; several times the throughput of httpx's
own transport on one core) or ``httpx``. Tests inject a transport instead
(``httpx.MockTransport`` or respx), so the real code path is the tested one.

Every httpx/aiohttp exception is translated here, by type, into the error tree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Literal, Protocol, runtime_checkable

import httpx

from proxy.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from proxy.providers.base import UpstreamRequest

TransportName = Literal["aiohttp", "httpx"]
TransportFactory = Callable[[httpx.Limits], httpx.AsyncBaseTransport]

DEFAULT_KEEPALIVE_S = 60.0


@asynccontextmanager
async def upstream_errors(provider: str) -> AsyncIterator[None]:
    """Translate transport exceptions into ``UpstreamError`` naming ``provider``."""
    try:
        yield
    except UpstreamError:
        raise
    except httpx.TimeoutException as exc:
        if _refused(exc):
            raise UpstreamConnectionError(
                f"{provider}: could not connect to the upstream", provider=provider
            ) from exc
        raise UpstreamTimeoutError(
            f"{provider}: the upstream timed out", provider=provider
        ) from exc
    except (httpx.ConnectError, httpx.ProxyError, httpx.UnsupportedProtocol) as exc:
        raise UpstreamConnectionError(
            f"{provider}: could not connect to the upstream", provider=provider
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamProtocolError(
            f"{provider}: the upstream closed the connection unexpectedly", provider=provider
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamConnectionError(
            f"{provider}: transport error talking to the upstream", provider=provider
        ) from exc


def _refused(exc: BaseException) -> bool:
    """httpx-aiohttp reports a refused or dropped connection as a connect timeout."""
    cause = exc.__cause__
    if isinstance(cause, TimeoutError):  # an OSError subclass since Python 3.10: a real timeout
        return False
    return isinstance(cause, OSError) or type(cause).__name__ in _AIOHTTP_CONNECTION_ERRORS


_AIOHTTP_CONNECTION_ERRORS = frozenset(
    {
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "ClientConnectionResetError",
    }
)


def _default_transport(name: TransportName) -> TransportFactory:
    if name == "aiohttp":
        from proxy.pipeline.aiohttp_upstream import AiohttpUpstream

        def aiohttp_factory(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
            return AiohttpUpstream(limits=limits, trust_env=False)

        return aiohttp_factory

    def httpx_factory(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)

    return httpx_factory


@runtime_checkable
class FastTransport(Protocol):
    """A transport that also takes an :class:`UpstreamRequest` as it is (``AiohttpUpstream``).

    It skips building an ``httpx.Request``; the answer is the same ``httpx.Response``.
    """

    async def fetch(
        self, request: UpstreamRequest, *, timeout: Mapping[str, float]
    ) -> httpx.Response:
        """Send and read the whole answer."""
        ...

    async def open(
        self, request: UpstreamRequest, *, timeout: Mapping[str, float]
    ) -> httpx.Response:
        """Send and return once the headers are in, the body still to be streamed."""
        ...


class UpstreamClients:
    """One pooled transport per configured provider.

    Requests go straight to the transport (``handle_async_request``): the
    ``httpx.AsyncClient`` layers above it (URL merging, cookie jars, redirects,
    auth flows, event hooks) do nothing a proxy needs, and on one core they
    cost more than the transport itself. URLs are parsed once per endpoint.
    """

    def __init__(
        self,
        timeouts: Mapping[str, tuple[float, float, int]],
        *,
        transport: TransportName = "aiohttp",
        transport_factory: TransportFactory | None = None,
    ) -> None:
        """``timeouts`` maps provider name -> (connect_s, read_s, max_connections)."""
        factory = transport_factory or _default_transport(transport)
        self._transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._timeouts: dict[str, dict[str, float]] = {}
        self._urls: dict[str, httpx.URL] = {}
        self._fast: dict[str, FastTransport] = {}
        for name, (connect_s, read_s, max_connections) in timeouts.items():
            limits = httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=DEFAULT_KEEPALIVE_S,
            )
            made = self._transports[name] = factory(limits)
            if isinstance(made, FastTransport):  # once: a Protocol check is slow
                self._fast[name] = made
            self._timeouts[name] = {
                "connect": connect_s, "read": read_s, "write": read_s, "pool": connect_s,
            }  # fmt: skip

    def _request(self, provider: str, request: UpstreamRequest) -> httpx.Request:
        url = self._urls.get(request.url)
        if url is None:
            url = self._urls[request.url] = httpx.URL(request.url)
        return httpx.Request(
            request.method,
            url,
            headers=request.headers,
            content=request.content,
            extensions={"timeout": self._timeouts[provider]},
        )

    async def send(self, provider: str, request: UpstreamRequest) -> httpx.Response:
        """Send and read the whole answer."""
        fast = self._fast.get(provider)
        async with upstream_errors(provider):
            if fast is not None:
                return await fast.fetch(request, timeout=self._timeouts[provider])
            response = await self._transports[provider].handle_async_request(
                self._request(provider, request)
            )
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def open_stream(self, provider: str, request: UpstreamRequest) -> httpx.Response:
        """Send and return once the headers are in; the caller reads and closes it."""
        fast = self._fast.get(provider)
        async with upstream_errors(provider):
            if fast is not None:
                return await fast.open(request, timeout=self._timeouts[provider])
            return await self._transports[provider].handle_async_request(
                self._request(provider, request)
            )

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()
