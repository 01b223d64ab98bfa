"""``POST /v1/embeddings`` and ``POST /v1/responses``: pass-through to ``type: openai``.

The body goes upstream as the client sent it (the model renamed if its
``upstream`` differs) and the answer comes back as the upstream sent it; the
proxy only reads the usage for accounting. Streams are relayed frame by frame.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pricing.usage import Usage
from proxy.auth import Authenticator, presented_key
from proxy.errors import RequestError, SpendgateError, UpstreamProtocolError
from proxy.exchange import Exchange, RequestIds
from proxy.forward import upstream_status_error
from proxy.models import ModelTable
from proxy.providers.base import Provider
from proxy.providers.openai import OpenAIProvider, usage_from_openai
from proxy.render import JSON, as_spendgate_error, error_response, exchange_headers
from proxy.request import parse_object, read_body, require_model, tags_of
from proxy.sse import SSEDecoder, encode_data
from proxy.stages import AccountingStage
from proxy.upstream import UpstreamClients, upstream_errors


def responses_usage(raw: Mapping[str, Any] | None) -> Usage | None:
    """Usage of a Responses API ``response`` object."""
    if not isinstance(raw, Mapping):
        return None
    details = raw.get("input_tokens_details") or {}
    output_details = raw.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_prompt_tokens=int(details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )


def _usage_of(endpoint: str, body: Mapping[str, Any]) -> Usage | None:
    if endpoint == "responses":
        return responses_usage(body.get("usage"))
    return usage_from_openai(body.get("usage"))


class PassthroughHandler:
    def __init__(
        self,
        *,
        auth: Authenticator,
        models: ModelTable,
        providers: Mapping[str, Provider],
        clients: UpstreamClients,
        accounting: AccountingStage,
        max_body_bytes: int,
        ids: RequestIds,
    ) -> None:
        self._auth = auth
        self._models = models
        self._providers = providers
        self._clients = clients
        self._accounting = accounting
        self._max_body = max_body_bytes
        self._ids = ids

    async def embeddings(self, request: Request) -> Response:
        return await self._handle(request, "embeddings")

    async def responses(self, request: Request) -> Response:
        return await self._handle(request, "responses")

    async def _handle(self, request: Request, endpoint: str) -> Response:
        ex = Exchange(endpoint, self._ids())
        try:
            ex.principal = self._auth.authenticate(request.headers)
            ex.client_key = presented_key(request.headers)
            ex.raw = await read_body(request, limit=self._max_body)
            ex.body = parse_object(ex.raw)
            ex.requested_model = require_model(ex.body)
            ex.tags = tags_of(request.headers, ex.body)
            ex.stream = ex.body.get("stream") is True
            ex.target = self._models.resolve(ex.requested_model)
            provider = self._providers[ex.target.provider]
            if not isinstance(provider, OpenAIProvider):
                raise RequestError(
                    f"/v1/{endpoint} is only available for models of providers of type openai",
                    param="model",
                )
            upstream_model = ex.target.model.upstream_name
            body = (
                None
                if upstream_model == ex.requested_model
                else {**ex.body, "model": upstream_model}
            )
            upstream = provider.build_passthrough_request(
                endpoint, ex.raw, client_key=ex.client_key, body=body
            )
            started = time.perf_counter()
            if ex.stream:
                response = await self._clients.open_stream(ex.target.provider, upstream)
                return await self._relay(ex, provider, response, started)
            try:
                response = await self._clients.send(ex.target.provider, upstream)
            finally:
                ex.upstream_s = time.perf_counter() - started
            return self._finish(ex, provider, response)
        except Exception as exc:  # the request's one boundary: render, and still account
            error = as_spendgate_error(exc)
            ex.status, ex.error_type = error.http_status, error.type
            if ex.principal is not None:
                self._accounting.charge(ex)
                self._accounting.record(ex)
            return error_response(error, ex)

    def _finish(self, ex: Exchange, provider: OpenAIProvider, response: httpx.Response) -> Response:
        if response.status_code >= 400:
            raise upstream_status_error(
                provider, response.status_code, response.content, response.headers
            )
        try:
            parsed = json.loads(response.content)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{provider.settings.name}: the upstream answered with malformed JSON",
                provider=provider.settings.name,
            ) from exc
        ex.usage = _usage_of(ex.endpoint, parsed) if isinstance(parsed, dict) else None
        self._accounting.charge(ex)
        self._accounting.record(ex)
        return Response(response.content, headers=exchange_headers(ex), media_type=JSON)

    async def _relay(
        self, ex: Exchange, provider: OpenAIProvider, response: httpx.Response, started: float
    ) -> Response:
        if response.status_code >= 400:
            try:
                async with upstream_errors(provider.settings.name):
                    content = await response.aread()
            finally:
                await response.aclose()
            raise upstream_status_error(provider, response.status_code, content, response.headers)
        return StreamingResponse(
            self._frames(ex, response, started),
            headers=exchange_headers(ex),
            media_type="text/event-stream",
        )

    async def _frames(
        self, ex: Exchange, response: httpx.Response, started: float
    ) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        try:
            async with upstream_errors(ex.target.provider if ex.target else "upstream"):
                async for data in response.aiter_bytes():
                    for event in decoder.feed(data):
                        self._watch(ex, event.data)
                    yield data
        except SpendgateError as exc:
            ex.status, ex.error_type = exc.http_status, exc.type
            yield encode_data(exc.body())
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
            ex.upstream_s = time.perf_counter() - started
            self._accounting.charge(ex)
            self._accounting.record(ex)

    @staticmethod
    def _watch(ex: Exchange, data: str) -> None:
        # Only the final event carries usage; skip parsing the rest.
        if '"usage"' not in data:
            return
        try:
            event = json.loads(data)
        except ValueError:
            return
        response = event.get("response") if isinstance(event, dict) else None
        if isinstance(response, dict) and response.get("usage"):
            ex.usage = responses_usage(response["usage"])
