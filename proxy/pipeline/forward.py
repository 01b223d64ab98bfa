"""The upstream stage: one attempt at one target, streaming or not.

Retries and fallbacks wrap these attempts (see ``proxy.pipeline.chat``); an attempt
either returns a usable answer or raises an ``UpstreamError``. A streaming
attempt returns only once its first chunk is in hand, so a fallback can still
happen before the client has seen a byte.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import anyio
import httpx

from proxy.errors import UpstreamAuthError, UpstreamError, UpstreamProtocolError
from proxy.pipeline.exchange import Exchange, Target
from proxy.pipeline.upstream import UpstreamClients, upstream_errors
from proxy.providers.base import (
    ChatResult,
    Provider,
    StreamChunk,
    StreamTranslator,
    UpstreamRequest,
)
from proxy.providers.sse import SSEDecoder


@dataclass(slots=True)
class StreamStart:
    """An open upstream stream whose first chunks have been read."""

    target: Target
    response: httpx.Response
    chunks: AsyncIterator[bytes]
    decoder: SSEDecoder
    translator: StreamTranslator
    first: list[StreamChunk]

    async def aclose(self) -> None:
        # Shielded: this runs while a disconnected client's task is being cancelled.
        with anyio.CancelScope(shield=True):
            await self.response.aclose()


def upstream_status_error(
    provider: Provider, status: int, content: bytes, headers: Mapping[str, str]
) -> UpstreamError:
    """The error for a non-2xx upstream answer.

    A 401/403 for the proxy's own provider key is the operator's problem, not
    the client's: it becomes a 502 naming the provider, so a client does not
    take it for a rejection of its own proxy key.
    """
    if status in (401, 403) and not provider.settings.forward_client_key:
        name = provider.settings.name
        return UpstreamAuthError(
            f"{name}: the provider refused the proxy's credentials (HTTP {status}); "
            f"check providers.{name}.api_key",
            provider=name,
        )
    return provider.map_error(status, content, headers)


class Forwarder:
    def __init__(self, providers: Mapping[str, Provider], clients: UpstreamClients) -> None:
        self._providers = providers
        self._clients = clients

    def provider(self, name: str) -> Provider:
        return self._providers[name]

    @property
    def clients(self) -> UpstreamClients:
        return self._clients

    def _prepare(
        self, ex: Exchange, target: Target, *, stream: bool
    ) -> tuple[Provider, UpstreamRequest]:
        provider = self._providers[target.provider]
        request = provider.build_chat_request(
            ex, upstream_model=target.model.upstream_name, stream=stream
        )
        return provider, request

    async def complete(self, ex: Exchange, target: Target) -> ChatResult:
        provider, request = self._prepare(ex, target, stream=False)
        started = time.perf_counter()
        try:
            response = await self._clients.send(target.provider, request)
        finally:
            ex.upstream_s += time.perf_counter() - started
        if response.status_code >= 400:
            raise upstream_status_error(
                provider, response.status_code, response.content, response.headers
            )
        return provider.parse_chat_response(response.content, model=target.model.name)

    async def open_stream(self, ex: Exchange, target: Target) -> StreamStart:
        provider, request = self._prepare(ex, target, stream=True)
        started = time.perf_counter()
        response = await self._clients.open_stream(target.provider, request)
        try:
            if response.status_code >= 400:
                async with upstream_errors(target.provider):
                    content = await response.aread()
                raise upstream_status_error(
                    provider, response.status_code, content, response.headers
                )
            start = await self._first_chunks(target, provider, response)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await response.aclose()
            raise
        finally:
            ex.upstream_s += time.perf_counter() - started
        return start

    async def _first_chunks(
        self, target: Target, provider: Provider, response: httpx.Response
    ) -> StreamStart:
        chunks = response.aiter_bytes()
        decoder = SSEDecoder()
        translator = provider.stream_translator(model=target.model.name)
        first: list[StreamChunk] = []
        async with upstream_errors(target.provider):
            async for data in chunks:
                for event in decoder.feed(data):
                    first.extend(translator.feed(event))
                if first or translator.finished:
                    break
        if not first:
            raise UpstreamProtocolError(
                f"{target.provider}: the upstream stream ended before any answer",
                provider=target.provider,
            )
        return StreamStart(target, response, chunks, decoder, translator, first)
