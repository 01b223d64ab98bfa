"""Admin endpoints under ``/admin``: the admin key only, never a proxy key."""

from __future__ import annotations

from fastapi import FastAPI


def register_admin_routes(app: FastAPI) -> None:
    return None
