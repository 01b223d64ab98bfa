"""The agent compute dashboard, served by the proxy at ``/dashboard``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from proxy.ops.dashboard.pages import PAGES
from proxy.ops.dashboard.views import login, login_page, logout, page_handler, workflow_page

PAGE_PATHS = {
    "overview": "/dashboard",
    "agents": "/dashboard/agents",
    "workflows": "/dashboard/workflows",
    "models": "/dashboard/models",
}


def register_dashboard_routes(app: FastAPI) -> None:
    """Add the dashboard's routes to ``app``: its pages, login and logout."""
    routes = [
        Route("/dashboard/login", login_page, methods=["GET"]),
        Route("/dashboard/login", login, methods=["POST"]),
        Route("/dashboard/logout", logout, methods=["POST"]),
        Route("/dashboard/workflow/{name:path}", workflow_page, methods=["GET"]),
        *(Route(PAGE_PATHS[name], page_handler(name), methods=["GET"]) for name in PAGES),
    ]
    app.router.routes.extend(routes)
