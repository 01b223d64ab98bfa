"""The pass-through floor: the least a Starlette proxy on httpx can cost.

    python -m bench.floor --port P --upstream http://127.0.0.1:UP/v1

One route, ``POST /v1/chat/completions``, that forwards the body as is over
the same client stack Spendgate uses (httpx with the aiohttp transport,
keep-alive) and relays the answer, streamed or not, under the same uvicorn
settings. Spendgate's overhead above this floor is what its pipeline costs.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from httpx_aiohttp import AiohttpTransport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

MAX_CONNECTIONS = 512


def build_app(upstream: str) -> Starlette:
    """The pass-through app forwarding to ``upstream`` (a base URL ending in /v1)."""
    clients: list[httpx.AsyncClient] = []
    target = upstream.rstrip("/") + "/chat/completions"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        )
        client = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits, trust_env=False),
            timeout=httpx.Timeout(600.0, connect=5.0),
            trust_env=False,
        )
        clients.append(client)
        try:
            yield
        finally:
            await client.aclose()

    async def chat(request: Request) -> Response:
        client = clients[0]
        body = await request.body()
        headers = {"content-type": "application/json", "authorization": "Bearer bench"}
        upstream_request = client.build_request("POST", target, headers=headers, content=body)
        if b'"stream":true' not in body:
            answer = await client.send(upstream_request)
            return Response(
                answer.content,
                status_code=answer.status_code,
                media_type=answer.headers.get("content-type"),
            )
        answer = await client.send(upstream_request, stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    yield chunk
            finally:
                await answer.aclose()

        return StreamingResponse(
            relay(), status_code=answer.status_code, media_type="text/event-stream"
        )

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="auto",
        http="auto",
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
