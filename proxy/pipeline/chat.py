"""``POST /v1/chat/completions``: the pipeline's stages, run in order.

authenticate -> read and check the body -> resolve the model -> cache lookup
-> route (budgets, model choice) -> upstream (retries, fallbacks) -> account.
Everything but the cache and the chat wire format is the policy every model
endpoint shares (``proxy.pipeline.policy``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from proxy.pipeline.disconnect import EventStreamResponse
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.forward import Forwarder
from proxy.pipeline.policy import EndpointPolicy
from proxy.pipeline.relay import Relay, relay_stream, spendgate_object
from proxy.pipeline.render import JSON, exchange_headers, exchange_raw_headers, with_raw_headers
from proxy.pipeline.request import check_chat_body, wants_usage
from proxy.pipeline.stages import AccountingStage, CacheStage, RouterStage
from proxy.providers.openai import usage_from_openai
from proxy.providers.sse import DONE_FRAME, encode_data

SSE = "text/event-stream"
# One encoder: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_SSE_RAW_HEADERS = [(k.encode(), v.encode()) for k, v in _SSE_HEADERS.items()]

ReplayChunks = Callable[[dict[str, Any], bool], list[dict[str, Any]]]
AssemblerFactory = Callable[[], Any]


class ChatHandler:
    def __init__(
        self,
        *,
        policy: EndpointPolicy,
        router: RouterStage,
        cache: CacheStage,
        forwarder: Forwarder,
        accounting: AccountingStage,
        replay: ReplayChunks,
        assembler: AssemblerFactory,
    ) -> None:
        self._policy = policy
        self._router = router
        self._cache = cache
        self._forwarder = forwarder
        self._accounting = accounting
        self._replay = replay
        self._assembler = assembler

    async def __call__(self, request: Request) -> Response:
        ex = self._policy.exchange("chat")
        try:
            await self._policy.admit(ex, request, check=check_chat_body)
            ex.include_usage = ex.stream and wants_usage(ex.body)
            cached = await self._cache.lookup(ex) or await self._cache.join(ex)
            if cached is not None:
                return self._from_cache(ex, cached)
            try:
                await self._policy.plan(ex)
                if ex.stream:
                    return await self._stream(ex, request)
                return await self._complete(ex, request)
            except BaseException:
                await self._cache.store(ex, None)
                raise
        except Exception as exc:  # the request's one boundary: render, and still account
            return self._policy.fail(ex, exc)

    async def _complete(self, ex: Exchange, request: Request) -> Response:
        result = await self._policy.call(
            ex, request, lambda target: self._forwarder.complete(ex, target)
        )
        ex.usage = result.usage
        self._accounting.charge(ex)
        await self._cache.store(ex, result.parsed)
        self._accounting.record(ex)
        return with_raw_headers(Response(result.body, media_type=JSON), exchange_raw_headers(ex))

    async def _stream(self, ex: Exchange, request: Request) -> Response:
        start = await self._policy.call(
            ex, request, lambda target: self._forwarder.open_stream(ex, target)
        )
        assembler = self._assembler()
        relay = Relay(ex, charge=self._accounting.charge, sink=assembler.feed)

        def on_end(complete: bool) -> None:
            usage = start.translator.usage
            ex.usage = usage if complete or usage is not None else None
            if ex.charges is None:
                self._accounting.charge(ex)
            self._accounting.record(ex)
            self._cache.store_later(ex, assembler.result() if complete else None)

        response = EventStreamResponse(
            relay_stream(ex, start, relay, on_end=on_end), media_type=SSE
        )
        return with_raw_headers(response, [*exchange_raw_headers(ex), *_SSE_RAW_HEADERS])

    def _from_cache(self, ex: Exchange, completion: dict[str, Any]) -> Response:
        if ex.target is None:  # "auto": the answer names the model that produced it
            ex.target = self._router.target_for(str(completion.get("model") or ""))
        ex.usage = usage_from_openai(completion.get("usage"))
        self._accounting.charge(ex)
        self._accounting.record(ex)
        headers = exchange_headers(ex)
        if not ex.stream:
            body = ex.cached_body or _ENCODE(completion).encode()
            return Response(body, headers=headers, media_type=JSON)
        chunks = self._replay(completion, ex.include_usage)
        return EventStreamResponse(
            _replayed(ex, chunks), headers={**headers, **_SSE_HEADERS}, media_type=SSE
        )


async def _replayed(ex: Exchange, chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if not chunk.get("choices") and chunk.get("usage") is not None:
            chunk = {**chunk, "spendgate": spendgate_object(ex)}
        yield encode_data(chunk)
    yield DONE_FRAME
