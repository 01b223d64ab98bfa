"""``POST /v1/embeddings`` and ``POST /v1/responses``, for ``type: openai`` providers.

The body goes upstream as the client sent it (the model renamed if the
serving model's ``upstream`` differs) and the answer comes back as the
upstream sent it; the proxy reads the usage for accounting. Everything a call
is promised (keys, rate limits, budgets, retries, fallbacks within the tier,
circuit breakers, the ledger row, a 499 for a client that leaves) is the
policy every model endpoint shares (``proxy.pipeline.policy``); this module holds only
what differs: the wire format and the checks on the body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response

from pricing.usage import Usage
from proxy.errors import RequestError, UpstreamProtocolError
from proxy.pipeline.disconnect import EventStreamResponse
from proxy.pipeline.exchange import Exchange, Target
from proxy.pipeline.forward import Forwarder, upstream_status_error
from proxy.pipeline.passthrough_stream import (
    OpenStream,
    StreamWatch,
    first_event,
    relay_events,
    responses_usage,
)
from proxy.pipeline.policy import EndpointPolicy
from proxy.pipeline.render import JSON, exchange_headers
from proxy.pipeline.request import require_model
from proxy.pipeline.upstream import upstream_errors
from proxy.providers.openai import OpenAIProvider, usage_from_openai

SSE = "text/event-stream"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def check_passthrough_body(body: Mapping[str, Any]) -> None:
    """The few checks the proxy itself relies on; the upstream checks the rest."""
    require_model(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", param="stream")


def _usage_of(endpoint: str, body: Any) -> Usage | None:
    if not isinstance(body, dict):
        return None
    if endpoint == "responses":
        return responses_usage(body.get("usage"))
    return usage_from_openai(body.get("usage"))


class PassthroughHandler:
    def __init__(self, *, policy: EndpointPolicy, forwarder: Forwarder) -> None:
        self._policy = policy
        self._forwarder = forwarder

    async def embeddings(self, request: Request) -> Response:
        return await self._handle(request, "embeddings")

    async def responses(self, request: Request) -> Response:
        return await self._handle(request, "responses")

    async def _handle(self, request: Request, endpoint: str) -> Response:
        ex = self._policy.exchange(endpoint)
        try:
            await self._policy.admit(ex, request, check=check_passthrough_body)
            ex.stream = ex.stream and endpoint == "responses"  # embeddings are never streamed
            assert ex.target is not None  # resolve() set it: "auto" is chat's alone
            self._provider(ex.target)  # refuse another provider type before any budget is held
            await self._policy.plan(ex)
            if ex.stream:
                opened = await self._policy.call(ex, request, lambda t: self._open(ex, t))
                if isinstance(opened, bytes):  # answered whole: passed on as it came
                    self._policy.settle(ex)
                    return Response(opened, headers=exchange_headers(ex), media_type=JSON)
                return EventStreamResponse(
                    relay_events(ex, opened, on_end=lambda: self._policy.settle(ex)),
                    headers={**exchange_headers(ex), **_SSE_HEADERS},
                    media_type=SSE,
                )
            content = await self._policy.call(ex, request, lambda t: self._send(ex, t))
            self._policy.settle(ex)
            return Response(content, headers=exchange_headers(ex), media_type=JSON)
        except Exception as exc:  # the request's one boundary: render, and still account
            return self._policy.fail(ex, exc)

    def _provider(self, target: Target) -> OpenAIProvider:
        provider = self._forwarder.provider(target.provider)
        if not isinstance(provider, OpenAIProvider):
            raise RequestError(
                f"this endpoint is only available for models of providers of type openai "
                f"({target.model.name} is served by {target.provider})",
                param="model",
            )
        return provider

    def _request_for(self, ex: Exchange, target: Target) -> tuple[OpenAIProvider, Any]:
        provider = self._provider(target)
        upstream_model = target.model.upstream_name
        body = (
            None if upstream_model == ex.body.get("model") else {**ex.body, "model": upstream_model}
        )
        request = provider.build_passthrough_request(
            ex.endpoint, ex.raw, client_key=ex.client_key, body=body
        )
        return provider, request

    async def _send(self, ex: Exchange, target: Target) -> bytes:
        """One attempt at a whole answer: its bytes, once they parse as JSON."""
        provider, request = self._request_for(ex, target)
        started = time.perf_counter()
        try:
            response = await self._forwarder.clients.send(target.provider, request)
        finally:
            ex.upstream_s += time.perf_counter() - started
        return self._whole(ex, target, provider, response.status_code, response.content, response)

    @staticmethod
    def _whole(
        ex: Exchange,
        target: Target,
        provider: OpenAIProvider,
        status: int,
        content: bytes,
        response: httpx.Response,
    ) -> bytes:
        if status >= 400:
            raise upstream_status_error(provider, status, content, response.headers)
        try:
            parsed = json.loads(content)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{target.provider}: the upstream answered with malformed JSON",
                provider=target.provider,
            ) from exc
        ex.usage = _usage_of(ex.endpoint, parsed)
        return content

    async def _open(self, ex: Exchange, target: Target) -> OpenStream | bytes:
        """One attempt at a stream: returns once its first event is in hand.

        An upstream that answers with a whole JSON body (an error, or one
        that does not stream) gives that body instead.
        """
        provider, request = self._request_for(ex, target)
        started = time.perf_counter()
        response: httpx.Response = await self._forwarder.clients.open_stream(
            target.provider, request
        )
        try:
            kind = response.headers.get("content-type", "")
            if response.status_code >= 400 or not kind.startswith("text/event-stream"):
                async with upstream_errors(target.provider):
                    content = await response.aread()
                await response.aclose()
                ex.upstream_s += time.perf_counter() - started
                return self._whole(ex, target, provider, response.status_code, content, response)
            return await first_event(target, response, StreamWatch(ex.endpoint), started)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await response.aclose()
            raise
