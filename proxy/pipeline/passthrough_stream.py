"""Relaying a Responses API stream (``POST /v1/responses`` with ``stream: true``).

The upstream's bytes reach the client as they arrive; the proxy only watches
the events go by: their ``sequence_number``, the usage in the final
``response.completed`` (or ``response.incomplete`` / ``response.failed``),
and whether that final event came at all. A stream that breaks after it
started ends with the Responses API's own error event,
``event: error`` / ``{"type": "error", "code", "message", "param",
"sequence_number"}``, numbered after the last event relayed, so an SDK reads
it as that stream's error rather than as a chat-completions frame.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from pricing.usage import Usage
from proxy.errors import SpendgateError, UpstreamProtocolError
from proxy.pipeline.exchange import Exchange, Target
from proxy.pipeline.render import as_spendgate_error
from proxy.pipeline.upstream import upstream_errors
from proxy.providers.sse import SSEDecoder, SSEEvent, encode_data

_SEQUENCE = re.compile(r'"sequence_number"\s*:\s*(\d+)')
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
_FAILED = frozenset({"response.failed", "error"})


def responses_usage(raw: Any) -> Usage | None:
    """Usage of a Responses API ``response`` object."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details") or {}
    output_details = raw.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_prompt_tokens=int(details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
        source="upstream",
    )


@dataclass(slots=True)
class StreamWatch:
    """What the proxy learns from a stream's events without changing them."""

    endpoint: str
    decoder: SSEDecoder = field(default_factory=SSEDecoder)
    usage: Usage | None = None
    last_sequence: int = -1
    events: int = 0
    finished: bool = False
    failed: bool = False

    def feed(self, data: bytes) -> None:
        for event in self.decoder.feed(data):
            self._see(event)

    def flush(self) -> None:
        for event in self.decoder.flush():
            self._see(event)

    def _see(self, event: SSEEvent) -> None:
        self.events += 1
        found = _SEQUENCE.search(event.data)
        if found:
            self.last_sequence = int(found.group(1))
        kind = event.event or _type_of(event.data)
        if kind in _FINAL:
            self.finished = True
            self.failed = kind in _FAILED
            if '"usage"' in event.data:  # only the final events carry usage: parse them alone
                self.usage = _usage_in(event.data) or self.usage

    def error_frame(self, error: SpendgateError) -> bytes:
        """The event that ends a broken stream, in this endpoint's own format."""
        if self.endpoint != "responses":
            return encode_data(error.body())
        payload = {
            "type": "error",
            "code": error.code or error.type,
            "message": error.message,
            "param": error.param,
            "sequence_number": self.last_sequence + 1,
        }
        return (
            b"event: error\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
        )


def _type_of(data: str) -> str | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) else None


def _usage_in(data: str) -> Usage | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    response = event.get("response") if isinstance(event, dict) else None
    return responses_usage(response.get("usage")) if isinstance(response, dict) else None


@dataclass(slots=True)
class OpenStream:
    """An upstream stream whose first event has been read (so a fallback was still possible)."""

    target: Target
    response: httpx.Response
    chunks: AsyncIterator[bytes]
    head: bytes
    watch: StreamWatch
    started: float

    async def aclose(self) -> None:
        # Shielded: this runs while a disconnected client's task is being cancelled.
        with anyio.CancelScope(shield=True):
            await self.response.aclose()


async def first_event(
    target: Target, response: httpx.Response, watch: StreamWatch, started: float
) -> OpenStream:
    """Read until the stream's first whole event; raise if it ends before one."""
    chunks = response.aiter_bytes()
    head = b""
    async with upstream_errors(target.provider):
        async for data in chunks:
            head += data
            watch.feed(data)
            if watch.events:
                break
    if not watch.events:
        raise UpstreamProtocolError(
            f"{target.provider}: the upstream stream ended before any event",
            provider=target.provider,
        )
    return OpenStream(target, response, chunks, head, watch, started)


async def relay_events(
    ex: Exchange, stream: OpenStream, *, on_end: Callable[[], None]
) -> AsyncIterator[bytes]:
    """Yield the client's bytes; ``on_end`` runs however the stream ends."""
    watch = stream.watch
    done = False
    try:
        yield stream.head
        async with upstream_errors(stream.target.provider):
            async for data in stream.chunks:
                watch.feed(data)
                yield data
        watch.flush()
        if not watch.finished:
            raise UpstreamProtocolError(
                f"{stream.target.provider}: the upstream stream ended early",
                provider=stream.target.provider,
            )
        if watch.failed:
            ex.status, ex.error_type = 502, "upstream_error"
        done = True
    except SpendgateError as exc:
        error = as_spendgate_error(exc)
        ex.status, ex.error_type = error.http_status, error.type
        yield watch.error_frame(error)
    finally:
        if not done and ex.error_type is None:
            # Neither finished nor failed upstream: the client went away.
            ex.status, ex.error_type = 499, "client_disconnected"
        await stream.aclose()
        ex.upstream_s = time.perf_counter() - stream.started
        ex.usage = watch.usage
        on_end()
