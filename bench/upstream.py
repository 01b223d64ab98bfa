"""A fast fake OpenAI-compatible upstream for the overhead benchmark.

    python -m bench.upstream --port P [--delay-ms D] [--fail-rate F]

A raw asyncio ``Protocol`` speaking just enough HTTP/1.1 (keep-alive,
``Content-Length`` request bodies) to answer ``POST .../chat/completions``
from prebuilt bytes, so that what the benchmark measures is the proxy, not
this server. Streaming answers are SSE in chunked transfer encoding, with a
usage chunk when the request asks for ``stream_options.include_usage``.

Faults, for the soak: ``--fail-rate F`` answers 500 to the first attempt of
a fraction F of distinct request bodies (chosen by a hash of the body) and
serves the retry, so a proxy that retries recovers every one of them. Any
path starting with ``/fail/`` always answers 500. ``GET /stats`` reports
counters; ``GET /healthz`` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

_MODEL = re.compile(rb'"model"\s*:\s*"([^"]{1,200})"')
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_REPLY_WORDS = ("Hello", " from", " the", " bench", " upstream", ".")
FAULT_SCALE = 1_000_000
MAX_FAULTS_REMEMBERED = 100_000


def _http(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nconnection: keep-alive\r\n\r\n" + body
    )  # fmt: skip


def completion_body(model: str) -> bytes:
    """A whole chat completion answering with ``_REPLY_WORDS``."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_REPLY_WORDS)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
        },
        separators=(",", ":"),
    ).encode()


def stream_events(model: str, *, include_usage: bool) -> list[bytes]:
    """The SSE frames of a streamed answer, ``[DONE]`` last."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000}
    chunks: list[dict[str, object]] = [
        {**base, "model": model, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    ]
    for word in _REPLY_WORDS:
        chunks.append(
            {**base, "model": model, "choices": [{"index": 0, "delta": {"content": word}}]}
        )
    chunks.append(
        {**base, "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    if include_usage:
        usage = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
        chunks.append({**base, "model": model, "choices": [], "usage": usage})
    frames = [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks]
    return [*frames, b"data: [DONE]\n\n"]


def _chunked(frames: list[bytes]) -> bytes:
    out = b"".join(f"{len(f):x}\r\n".encode() + f + b"\r\n" for f in frames)
    return out + b"0\r\n\r\n"


def stream_response(model: str, *, include_usage: bool) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    )
    return head + _chunked(stream_events(model, include_usage=include_usage))


FAULT_RESPONSE = _http(
    "500 Internal Server Error",
    b'{"error":{"message":"bench upstream fault","type":"server_error","code":null}}',
)
NOT_FOUND = _http("404 Not Found", b'{"error":{"message":"not found","type":"not_found"}}')
HEALTHY = _http("200 OK", b'{"status":"ok"}')


@dataclass
class UpstreamState:
    """Prebuilt answers and counters shared by every connection."""

    delay_s: float
    fail_rate: float
    answers: dict[tuple[bytes, bool, bool], bytes] = field(default_factory=dict)
    failed_once: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "ok": 0, "transient_faults": 0, "hard_faults": 0}
    )

    def answer(self, path: bytes, body: bytes) -> bytes:
        """The bytes that answer one request."""
        counts = self.counts
        counts["requests"] += 1
        if path.startswith(b"/fail/"):
            counts["hard_faults"] += 1
            return FAULT_RESPONSE
        if self.fail_rate > 0 and self._transient_fault(body):
            counts["transient_faults"] += 1
            return FAULT_RESPONSE
        match = _MODEL.search(body)
        model = match.group(1) if match else b"unknown"
        stream = _STREAM.search(body) is not None
        usage = stream and _USAGE.search(body) is not None
        key = (model, stream, usage)
        cached = self.answers.get(key)
        if cached is None:
            name = model.decode(errors="replace")
            cached = (
                stream_response(name, include_usage=usage)
                if stream
                else _http("200 OK", completion_body(name))
            )
            self.answers[key] = cached
        counts["ok"] += 1
        return cached

    def _transient_fault(self, body: bytes) -> bool:
        digest = zlib.crc32(body)
        if digest % FAULT_SCALE >= self.fail_rate * FAULT_SCALE:
            return False
        if digest in self.failed_once:
            self.failed_once.discard(digest)  # the retry: serve it
            return False
        if len(self.failed_once) < MAX_FAULTS_REMEMBERED:
            self.failed_once.add(digest)
        return True


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive client connection."""

    def __init__(self, state: UpstreamState) -> None:
        self._state = state
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        while True:
            end = self._buffer.find(_HEADER_END)
            if end < 0:
                return
            head = self._buffer[:end]
            match = _CONTENT_LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            body = self._buffer[end + 4 : total]
            self._buffer = self._buffer[total:]
            self._respond(head, body)

    def _respond(self, head: bytes, body: bytes) -> None:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0]
        state = self._state
        if method == b"GET":
            reply = HEALTHY if path == b"/healthz" else NOT_FOUND
            if path == b"/stats":
                reply = _http("200 OK", json.dumps(state.counts).encode())
            self._write(reply)
            return
        if not path.endswith(b"/chat/completions"):
            self._write(NOT_FOUND)
            return
        reply = state.answer(path, body)
        if state.delay_s > 0 and reply is not FAULT_RESPONSE:
            self._loop.call_later(state.delay_s, self._write, reply)
        else:
            self._write(reply)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def install_fast_loop() -> None:
    """Use uvloop when it is installed (it is, with ``uvicorn[standard]``)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(
    port: int, *, delay_ms: float, fail_rate: float, on_ready: Callable[[int], None]
) -> None:
    """Listen on 127.0.0.1:``port`` (0 picks one) until cancelled."""
    state = UpstreamState(delay_s=delay_ms / 1000, fail_rate=fail_rate)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(state), "127.0.0.1", port, backlog=1024
    )
    bound: int = server.sockets[0].getsockname()[1]
    on_ready(bound)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.upstream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    install_fast_loop()

    def ready(port: int) -> None:
        print(f"bench upstream listening on 127.0.0.1:{port}", flush=True)

    try:
        asyncio.run(
            serve(args.port, delay_ms=args.delay_ms, fail_rate=args.fail_rate, on_ready=ready)
        )
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
