"""Relaying a stream to the client, chunk by chunk, as it arrives.

Nothing is buffered whole. Chunks that pass through unchanged are sent as the
upstream serialised them. The usage chunk the proxy asked for is dropped
when the client did not ask for it; when the client did, it gains a
``spendgate`` object with the request's cost, baseline and savings.
A stream that breaks after it started ends with an SSE error event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from proxy.errors import SpendgateError, UpstreamProtocolError
from proxy.pipeline.exchange import Exchange
from proxy.pipeline.forward import StreamStart
from proxy.pipeline.render import as_spendgate_error, money_text
from proxy.pipeline.upstream import upstream_errors
from proxy.providers.base import StreamChunk
from proxy.providers.openai import usage_from_openai
from proxy.providers.sse import DONE_FRAME, encode_data, encode_raw

ChunkSink = Callable[[dict[str, Any]], None]


def is_usage_chunk(chunk: dict[str, Any]) -> bool:
    return not chunk.get("choices") and chunk.get("usage") is not None


def content_chars(chunk: dict[str, Any]) -> int:
    """Characters of answer text in one chunk (for estimating a cut stream)."""
    total = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            total += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                total += len(arguments)
    return total


def spendgate_object(ex: Exchange) -> dict[str, str]:
    charges = ex.charges
    if charges is None:
        return {}
    return {
        "cost_usd": money_text(charges.cost),
        "baseline_usd": money_text(charges.baseline_cost),
        "savings_usd": money_text(charges.savings),
        "request_id": ex.request_id,
    }


class Relay:
    """Turns chunks into frames for one exchange, charging at the usage chunk."""

    def __init__(
        self, ex: Exchange, *, charge: Callable[[Exchange], None], sink: ChunkSink
    ) -> None:
        self._ex = ex
        self._charge = charge
        self._sink = sink

    def frames(self, chunks: Iterable[StreamChunk]) -> list[bytes]:
        out: list[bytes] = []
        for item in chunks:
            chunk = item.chunk
            self._sink(chunk)
            if is_usage_chunk(chunk):
                self._ex.usage = usage_from_openai(chunk["usage"])
                if not self._ex.include_usage:
                    continue
                self._charge(self._ex)
                out.append(encode_data({**chunk, "spendgate": spendgate_object(self._ex)}))
                continue
            self._ex.completion_chars += content_chars(chunk)
            out.append(encode_raw(item.raw) if item.raw is not None else encode_data(chunk))
        return out


async def relay_stream(
    ex: Exchange, start: StreamStart, relay: Relay, *, on_end: Callable[[bool], None]
) -> AsyncIterator[bytes]:
    """Yield the client's frames; ``on_end(complete)`` runs however the stream ends."""
    complete = False
    try:
        for frame in relay.frames(start.first):
            yield frame
        async with upstream_errors(start.target.provider):
            async for data in start.chunks:
                frames = relay.frames(_translate(start, data))
                for frame in frames:
                    yield frame
        for frame in relay.frames(_flush(start)):
            yield frame
        if not start.translator.finished:
            raise UpstreamProtocolError(
                f"{start.target.provider}: the upstream stream ended early",
                provider=start.target.provider,
            )
        complete = True
        yield DONE_FRAME
    except SpendgateError as exc:
        error = as_spendgate_error(exc)
        ex.status, ex.error_type = error.http_status, error.type
        yield encode_data(error.body())
    finally:
        if not complete and ex.error_type is None:
            # Neither finished nor failed upstream: the client went away.
            ex.status, ex.error_type = 499, "client_disconnected"
        await start.aclose()
        on_end(complete)


def _translate(start: StreamStart, data: bytes) -> list[StreamChunk]:
    out: list[StreamChunk] = []
    for event in start.decoder.feed(data):
        out.extend(start.translator.feed(event))
    return out


def _flush(start: StreamStart) -> list[StreamChunk]:
    out: list[StreamChunk] = []
    for event in start.decoder.flush():
        out.extend(start.translator.feed(event))
    return out
