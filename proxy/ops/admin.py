"""Admin endpoints under ``/admin``: the admin key only, never a proxy key.

Exports are streamed from the database, so a month of rows never sits in
memory; they come from the same queries as ``spendgate export``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pricing.cost import format_micro
from pricing.ledger import LedgerStore, aiter_csv, summary, summary_csv
from proxy.errors import AuthenticationError, SpendgateError
from proxy.ops.login_throttle import LoginThrottle
from proxy.ops.periods import window
from proxy.pipeline.auth import Authenticator, presented_key
from proxy.pipeline.render import JSON, error_response
from proxy.settings import Settings
from routing.budgets import BudgetUsage

CSV = "text/csv; charset=utf-8"
ADMIN_COOKIE = "spendgate_admin"


@dataclass(frozen=True, slots=True)
class OperatorView:
    """What the admin endpoints and the dashboard may use of the running app.

    The server builds it with the app (``proxy.server.runtime``) and keeps it
    on ``app.state.operator``; the operator surface reads keys, the ledger and
    the budgets through it and never reaches into the server.
    """

    settings: Settings
    auth: Authenticator
    throttle: LoginThrottle
    ledger: LedgerStore | None
    budget_usage: Callable[[], Awaitable[list[BudgetUsage]]]


def operator_view(request: Request) -> OperatorView:
    """The view of the app that serves ``request``."""
    view: OperatorView = request.app.state.operator
    return view


def admin_key_of(request: Request) -> str | None:
    return presented_key(request.headers) or request.cookies.get(ADMIN_COOKIE)


def client_address(request: Request) -> str:
    """The client's address, as the throttle counts it: the peer's, or the one a trusted
    reverse proxy (``server.forwarded_allow_ips``) names in X-Forwarded-For, which
    uvicorn has already put in its place."""
    return request.client.host if request.client is not None else "unknown"


async def check_admin_key(view: OperatorView, request: Request, presented: str | None) -> None:
    """Raise unless ``presented`` is the admin key; wrong keys count towards the throttle."""
    if presented is None:
        view.auth.authenticate_admin(None)  # missing (401) or disabled (403): not a guess
        return
    throttle = view.throttle
    address = client_address(request)
    await throttle.check(address)
    try:
        view.auth.authenticate_admin(presented)
    except AuthenticationError:
        await throttle.failed(address)
        raise
    await throttle.succeeded(address)


async def require_admin(request: Request) -> OperatorView:
    """The app's view, once the request has shown the admin key (429 while throttled)."""
    view = operator_view(request)
    await check_admin_key(view, request, admin_key_of(request))
    return view


def ledger_of(view: OperatorView) -> LedgerStore:
    """The ledger, or the error that says it is not available."""
    store = view.ledger
    if store is None:
        raise SpendgateError("the ledger is not available", code="ledger_unavailable")
    return store


async def export_csv(request: Request) -> Response:
    try:
        view = await require_admin(request)
        params = request.query_params
        start, end = window(params.get("from"), params.get("to"))
        store = ledger_of(view)
    except SpendgateError as exc:
        return error_response(exc)
    body = aiter_csv(store, start=start, end=end, tenant=params.get("tenant") or None)
    name = f"spendgate-{start.date()}-{end.date()}.csv"
    return StreamingResponse(
        body, media_type=CSV, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


async def summary_view(request: Request) -> Response:
    try:
        view = await require_admin(request)
        params = request.query_params
        start, end = window(params.get("from"), params.get("to"))
        period: Literal["all", "month"] = "all" if params.get("period") == "all" else "month"
        rows = await asyncio.to_thread(
            summary,
            ledger_of(view),
            start=start,
            end=end,
            tenant=params.get("tenant") or None,
            fee_rate=view.settings.config.ledger.fee_rate,
            period=period,
        )
    except SpendgateError as exc:
        return error_response(exc)
    if params.get("format") == "json":
        return Response(json.dumps([_summary_json(r) for r in rows]), media_type=JSON)
    return StreamingResponse(iter(summary_csv(rows)), media_type=CSV)


def _summary_json(row: Any) -> dict[str, Any]:
    data = asdict(row)
    for money in ("cost", "baseline_cost", "savings", "fee"):
        data[f"{money}_usd"] = format_micro(data.pop(money))
    data["fee_rate"] = str(data["fee_rate"])
    data["period_start"] = row.period_start.isoformat().replace("+00:00", "Z")
    data["period_end"] = row.period_end.isoformat().replace("+00:00", "Z")
    return data


async def budgets_view(request: Request) -> Response:
    try:
        view = await require_admin(request)
        usage = await view.budget_usage()
    except SpendgateError as exc:
        return error_response(exc)
    data = [
        {
            "name": u.name, "subject": u.subject, "period": u.period, "window": u.window,
            "limit_usd": format_micro(u.limit_micro), "used_usd": format_micro(u.used_micro),
            "remaining_usd": format_micro(u.remaining_micro),
        }
        for u in usage
    ]  # fmt: skip
    return Response(json.dumps({"budgets": data}), media_type=JSON)


def register_admin_routes(app: FastAPI) -> None:
    app.add_route("/admin/export.csv", export_csv, methods=["GET"])
    app.add_route("/admin/summary", summary_view, methods=["GET"])
    app.add_route("/admin/budgets", budgets_view, methods=["GET"])
