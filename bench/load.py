"""The load generator: keep-alive HTTP/1.1 over raw asyncio sockets.

    python -m bench.load --url URL --spec JSON (--requests N | --duration S)
                         [--concurrency C] [--warmup W] [--key KEY]

Runs in its own process so that its CPU is not the proxy's. ``C``
connections each send one request at a time and wait for the whole answer;
latency is from the first byte written to the last byte read, and for a
stream the time to first body byte is recorded too. The result is one JSON
object on stdout: per request kind and overall, counts, status codes,
requests/s and latency percentiles in milliseconds.

The spec is a list of request kinds, each ``{"name", "model", "stream",
"unique", "weight", "path"}``; requests cycle through them by weight.
``unique`` bodies carry a per-run nonce and counter (every one a cache
miss); the others repeat one fixed body (a cache hit after the first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from bench.upstream import install_fast_loop

_HEADER_END = b"\r\n\r\n"
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of request in a workload."""

    name: str
    model: str
    stream: bool = False
    unique: bool = True
    weight: int = 1
    path: str | None = None  # overrides the URL's path, e.g. a failing route
    cache_off: bool = False  # sends x-spendgate-cache: off

    def body(self, nonce: str, n: int) -> bytes:
        """The request body; ``n`` makes it unique when the kind asks for that."""
        text = f"[{nonce}-{n}] Say hello." if self.unique else f"[{self.name}] Say hello."
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 16,
        }
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body, separators=(",", ":")).encode()


def parse_spec(text: str) -> list[Kind]:
    """Kinds from the ``--spec`` JSON list."""
    return [Kind(**item) for item in json.loads(text)]


@dataclass
class Samples:
    """What one kind of request recorded."""

    latencies_ns: list[int] = field(default_factory=list)
    ttfb_ns: list[int] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    transport_errors: int = 0

    def add(self, status: int, latency_ns: int, ttfb_ns: int | None) -> None:
        self.latencies_ns.append(latency_ns)
        if ttfb_ns is not None:
            self.ttfb_ns.append(ttfb_ns)
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1


class ResponseReader(asyncio.Protocol):
    """One client connection: parses status, headers and a length or chunked body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, int | None]] | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers_done = False
        self._chunked = False
        self._remaining = 0
        self._first_body_ns: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed by the server"))

    def send(self, payload: bytes) -> asyncio.Future[tuple[int, int | None]]:
        """Write one request; the future gives (status, first body byte ns)."""
        if self.transport is None:
            raise ConnectionError("not connected")
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._headers_done and not self._parse_head():
            return
        if self._first_body_ns is None and self._buffer:
            self._first_body_ns = time.perf_counter_ns()
        done = self._parse_chunks() if self._chunked else self._parse_length()
        if done and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._status, self._first_body_ns))

    def _parse_head(self) -> bool:
        end = self._buffer.find(_HEADER_END)
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).lower()
        del self._buffer[: end + 4]
        self._status = int(head[9:12])
        self._headers_done = True
        self._chunked = b"transfer-encoding: chunked" in head
        if not self._chunked:
            marker = head.find(b"content-length:")
            line_end = head.find(b"\r\n", marker)
            value = head[marker + 15 : line_end if line_end > 0 else None]
            self._remaining = int(value) if marker >= 0 else 0
        return True

    def _parse_length(self) -> bool:
        if len(self._buffer) < self._remaining:
            return False
        del self._buffer[: self._remaining]
        return True

    def _parse_chunks(self) -> bool:
        buffer = self._buffer
        pos = 0
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                if len(buffer) < line_end + 4:
                    break
                del buffer[: line_end + 4]
                return True
            if len(buffer) < line_end + 2 + size + 2:
                break
            pos = line_end + 2 + size + 2
        del buffer[:pos]
        return False


@dataclass
class Plan:
    """Shared state of one run: what to send and when to stop."""

    kinds: list[Kind]
    cycle: list[int]
    heads: list[bytes]
    nonce: str
    stop_at_count: int | None
    stop_at_ns: int | None
    issued: int = 0
    samples: dict[str, Samples] = field(default_factory=dict)

    def next_request(self) -> tuple[int, bytes] | None:
        """The next (kind index, payload), or None when the run is over."""
        if self.stop_at_count is not None and self.issued >= self.stop_at_count:
            return None
        if self.stop_at_ns is not None and time.perf_counter_ns() >= self.stop_at_ns:
            return None
        index = self.cycle[self.issued % len(self.cycle)]
        body = self.kinds[index].body(self.nonce, self.issued)
        self.issued += 1
        payload = self.heads[index] + str(len(body)).encode() + b"\r\n\r\n" + body
        return index, payload


def _heads(url: str, kinds: Sequence[Kind], key: str | None) -> list[bytes]:
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    heads = []
    for kind in kinds:
        cache = "x-spendgate-cache: off\r\n" if kind.cache_off else ""
        heads.append(
            f"POST {kind.path or parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\n{auth}{cache}Content-Length: ".encode()
        )
    return heads


def _cycle(kinds: Sequence[Kind]) -> list[int]:
    return [i for i, kind in enumerate(kinds) for _ in range(max(1, kind.weight))]


async def _connect(host: str, port: int) -> ResponseReader:
    loop = asyncio.get_running_loop()
    _, reader = await asyncio.wait_for(
        loop.create_connection(ResponseReader, host, port), CONNECT_TIMEOUT_S
    )
    return reader


async def _worker(plan: Plan, host: str, port: int) -> None:
    conn = await _connect(host, port)
    while (item := plan.next_request()) is not None:
        index, payload = item
        kind = plan.kinds[index]
        samples = plan.samples.setdefault(kind.name, Samples())
        started = time.perf_counter_ns()
        try:
            if conn.transport is None:
                conn = await _connect(host, port)
            status, first = await asyncio.wait_for(conn.send(payload), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError):
            samples.transport_errors += 1
            if conn.transport is not None:
                conn.transport.close()
            conn = await _connect(host, port)  # a server that is gone ends the run here
            continue
        done = time.perf_counter_ns()
        ttfb = first - started if kind.stream and first is not None else None
        samples.add(status, done - started, ttfb)
    if conn.transport is not None:
        conn.transport.close()


async def run_load(
    url: str,
    kinds: Sequence[Kind],
    *,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    warmup: int = 0,
    key: str | None = None,
) -> dict[str, Any]:
    """Run one load phase (after ``warmup`` unrecorded requests) and summarise it."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    heads = _heads(url, kinds, key)
    if warmup:
        warm = Plan(list(kinds), _cycle(kinds), heads, uuid.uuid4().hex[:12], warmup, None)
        await asyncio.gather(*(_worker(warm, host, port) for _ in range(concurrency)))
    stop_ns = None if duration_s is None else time.perf_counter_ns() + int(duration_s * 1e9)
    plan = Plan(list(kinds), _cycle(kinds), heads, uuid.uuid4().hex[:12], requests, stop_ns)
    started = time.perf_counter_ns()
    await asyncio.gather(*(_worker(plan, host, port) for _ in range(concurrency)))
    elapsed_s = (time.perf_counter_ns() - started) / 1e9
    return summarise(plan.samples, elapsed_s=elapsed_s, concurrency=concurrency)


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def latency_summary(values_ns: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/mean/max in milliseconds."""
    ordered = sorted(values_ns)
    if not ordered:
        return {}
    ms = 1e6
    return {
        "p50": percentile(ordered, 50) / ms,
        "p90": percentile(ordered, 90) / ms,
        "p99": percentile(ordered, 99) / ms,
        "mean": sum(ordered) / len(ordered) / ms,
        "max": ordered[-1] / ms,
    }


def _summary(samples: Samples, elapsed_s: float) -> dict[str, Any]:
    count = len(samples.latencies_ns)
    out: dict[str, Any] = {
        "requests": count,
        "statuses": dict(samples.statuses),
        "transport_errors": samples.transport_errors,
        "rps": count / elapsed_s if elapsed_s > 0 else 0.0,
        "latency_ms": latency_summary(samples.latencies_ns),
    }
    if samples.ttfb_ns:
        out["ttfb_ms"] = latency_summary(samples.ttfb_ns)
    return out


def summarise(by_kind: dict[str, Samples], *, elapsed_s: float, concurrency: int) -> dict[str, Any]:
    """Overall and per-kind summaries of one run."""
    total = Samples()
    for samples in by_kind.values():
        total.latencies_ns.extend(samples.latencies_ns)
        total.ttfb_ns.extend(samples.ttfb_ns)
        total.transport_errors += samples.transport_errors
        for status, count in samples.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
    return {
        **_summary(total, elapsed_s),
        "concurrency": concurrency,
        "elapsed_s": elapsed_s,
        "kinds": {name: _summary(s, elapsed_s) for name, s in by_kind.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: prints the summary as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url", required=True, help="e.g. http://127.0.0.1:8080/v1/chat/completions"
    )
    parser.add_argument("--spec", required=True, help="JSON list of request kinds")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--duration", type=float, help="seconds (instead of --requests)")
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--key", help="proxy key sent as a bearer token")
    args = parser.parse_args(argv)
    if (args.requests is None) == (args.duration is None):
        parser.error("give exactly one of --requests and --duration")
    install_fast_loop()
    result = asyncio.run(
        run_load(
            args.url,
            parse_spec(args.spec),
            concurrency=args.concurrency,
            requests=args.requests,
            duration_s=args.duration,
            warmup=args.warmup,
            key=args.key,
        )
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
