"""The aiohttp transport's direct path answers exactly as httpx's own transport does.

A real HTTP server on loopback answers plain, gzip-encoded, streamed and
failing requests; ``UpstreamClients`` with ``aiohttp`` (which sends through
``AiohttpUpstream`` without building an ``httpx.Request``) and with
``httpx`` must give the same statuses, headers and bodies, and the same
errors.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from proxy.errors import UpstreamConnectionError
from proxy.pipeline.upstream import UpstreamClients
from proxy.providers.base import UpstreamRequest
from tests.support.processes import free_port

pytestmark = pytest.mark.anyio

PLAIN = json.dumps({"id": "chatcmpl-1", "choices": []}).encode()
FRAMES = [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', b"data: [DONE]\n\n"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _reply(path: bytes) -> bytes:
    if path == b"/gzip":
        body = gzip.compress(PLAIN)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        return head + b"content-length: %d\r\n\r\n" % len(body) + body
    if path == b"/stream":
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in FRAMES) + b"0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" \
            b"transfer-encoding: chunked\r\n\r\n" + chunks  # fmt: skip
    if path == b"/fail":
        body = b'{"error":{"message":"boom"}}'
        return (
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        )
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: yes\r\n"
    return head + b"content-length: %d\r\n\r\n" % len(PLAIN) + PLAIN


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(_reply(head.split(b" ")[1]))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _server() -> AsyncIterator[str]:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def _request(url: str) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {"content-type": "application/json"}, b'{"a":1}')


@asynccontextmanager
async def _clients(transport: str) -> AsyncIterator[UpstreamClients]:
    clients = UpstreamClients({"p": (5.0, 5.0, 8)}, transport=transport)  # type: ignore[arg-type]
    try:
        yield clients
    finally:
        await clients.aclose()


async def _answers(transport: str, base: str) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    async with _clients(transport) as clients:
        for path in ("/plain", "/gzip", "/fail", "/plain"):
            response = await clients.send("p", _request(base + path))
            headers = {k: v for k, v in response.headers.items() if k != "date"}
            out.append((response.status_code, headers, response.content))
        streamed = await clients.open_stream("p", _request(base + "/stream"))
        try:
            body = b"".join([chunk async for chunk in streamed.aiter_bytes()])
        finally:
            await streamed.aclose()
        out.append((streamed.status_code, dict(streamed.headers), body))
    return out


async def test_the_direct_path_answers_as_httpx_does() -> None:
    async with _server() as base:
        direct = await _answers("aiohttp", base)
        reference = await _answers("httpx", base)
    assert direct == reference
    assert direct[0][2] == PLAIN and direct[0][1]["x-upstream"] == "yes"
    assert direct[1][2] == PLAIN  # gzip decoded, as httpx decodes it
    assert direct[2][0] == 500
    assert direct[4][2] == b"".join(FRAMES)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_refused_connection_is_the_same_error(transport: str) -> None:
    async with _clients(transport) as clients:
        with pytest.raises(UpstreamConnectionError):
            await clients.send("p", _request(f"http://127.0.0.1:{free_port()}/x"))
        with pytest.raises(UpstreamConnectionError):
            await clients.open_stream("p", _request(f"http://127.0.0.1:{free_port()}/x"))
