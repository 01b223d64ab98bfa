"""The agent compute dashboard, served by the proxy at ``/dashboard``."""

from __future__ import annotations

from fastapi import FastAPI


def register_dashboard_routes(app: FastAPI) -> None:
    """Add the dashboard's routes to ``app``."""
    return None
