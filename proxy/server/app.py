"""The ASGI app: routes, lifespan (clients, stores, writers), error rendering.

The hot path (``/v1/chat/completions``) is a plain Starlette route: FastAPI's
per-request dependency and validation machinery costs more than it gives
there. FastAPI still serves the OpenAPI document and the admin endpoints.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pricing.tokens import release_free_memory
from proxy.errors import MethodNotAllowedError, NotFoundError, RequestError, SpendgateError
from proxy.ops.loop_lag import LoopLagProbe
from proxy.pipeline.render import error_response
from proxy.pipeline.upstream import TransportFactory
from proxy.server.openapi import extend_openapi
from proxy.server.runtime import build_runtime
from proxy.settings import Settings

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


class SpendgateApp(FastAPI):
    """FastAPI, with the chat hot path dispatched before its middleware stack.

    The chat handler renders its own errors and never raises, so the error,
    exception and exit-stack middlewares would only add per-request cost.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in CHAT_PATHS:
            scope["app"] = self
            response = await self.state.runtime.chat(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    transport_factory: TransportFactory | None = None,
    freeze_startup_objects: bool = False,
) -> FastAPI:
    """The app for ``settings``. Clients and stores open in its lifespan.

    ``freeze_startup_objects`` (the server's own process) moves everything
    built at start-up (catalog, routing data, tokenizers) out of the garbage
    collector's reach, so that its full collections, which run on the event
    loop, only walk what requests allocate.
    """

    lifespan = _lifespan(settings, transport_factory, freeze=freeze_startup_objects)
    app = SpendgateApp(
        title="Spendgate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    from proxy.server.routes import register_routes

    register_routes(app)
    document: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not document:
            document.update(
                extend_openapi(get_openapi(title=app.title, version=app.version, routes=app.routes))
            )
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(SpendgateError, _render_spendgate)
    app.add_exception_handler(StarletteHTTPException, _render_http)
    app.add_exception_handler(Exception, _render_unexpected)
    return app


def _lifespan(
    settings: Settings, transport_factory: TransportFactory | None, *, freeze: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await build_runtime(settings, transport_factory=transport_factory)
        app.state.runtime = runtime
        app.state.operator = runtime.operator
        if freeze:
            gc.collect()
            gc.freeze()
            # Loading models and parsing configuration freed many small objects.
            release_free_memory()
        refresher = asyncio.get_running_loop().create_task(runtime.refresh_gauges_forever())
        probe = LoopLagProbe(runtime.metrics.loop_lag)
        if settings.config.server.loop_lag_probe:
            probe.start()
        try:
            yield
        finally:
            probe.stop()
            refresher.cancel()
            await runtime.aclose()

    return lifespan


async def _render_spendgate(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def _render_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(NotFoundError(f"no such endpoint: {request.url.path[:200]}"))
    if exc.status_code == 405:
        return error_response(MethodNotAllowedError(f"method {request.method} not allowed here"))
    return error_response(RequestError(str(exc.detail)))


async def _render_unexpected(request: Request, exc: Exception) -> Response:
    return error_response(exc)
