"""The HTTP surface: which path is served by what."""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.pipeline.render import JSON, error_response
from proxy.server.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def chat_completions(request: Request) -> Response:
    return await _runtime(request).chat(request)


async def embeddings(request: Request) -> Response:
    return await _runtime(request).passthrough.embeddings(request)


async def responses(request: Request) -> Response:
    return await _runtime(request).passthrough.responses(request)


async def list_models(request: Request) -> Response:
    runtime = _runtime(request)
    try:
        runtime.auth.authenticate(request.headers)
    except Exception as exc:  # rendered like every other error
        return error_response(exc)
    return Response(json.dumps(runtime.models.listing()), media_type=JSON)


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


async def readyz(request: Request) -> Response:
    ready, report = await _runtime(request).readiness()
    body = json.dumps({"status": "ready" if ready else "not ready", "checks": report})
    return Response(body, status_code=200 if ready else 503, media_type=JSON)


async def metrics(request: Request) -> Response:
    runtime = _runtime(request)
    await runtime.refresh_gauges()
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def register_routes(app: FastAPI) -> None:
    """Plain Starlette routes: the hot path skips FastAPI's per-request machinery."""
    for prefix in ("/v1", ""):
        app.router.routes.append(
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"])
        )
        app.router.routes.append(Route(f"{prefix}/embeddings", embeddings, methods=["POST"]))
        app.router.routes.append(Route(f"{prefix}/responses", responses, methods=["POST"]))
        app.router.routes.append(Route(f"{prefix}/models", list_models, methods=["GET"]))
    app.router.routes.append(Route("/healthz", healthz, methods=["GET"]))
    app.router.routes.append(Route("/readyz", readyz, methods=["GET"]))
    app.router.routes.append(Route("/metrics", metrics, methods=["GET"]))
    from proxy.ops.admin import register_admin_routes
    from proxy.ops.dashboard import register_dashboard_routes

    register_admin_routes(app)
    register_dashboard_routes(app)
