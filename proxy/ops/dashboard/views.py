"""The dashboard's HTTP handlers: login, logout and the pages.

A page is served to the admin key (``Authorization: Bearer``) or to a valid
session cookie; a browser without either is sent to the login form, any
other client gets a 401. Proxy keys never pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pricing.ledger.analytics import ensure_indexes
from proxy.errors import AuthenticationError, PermissionDeniedError, RequestError, SpendgateError
from proxy.ops.admin import OperatorView, check_admin_key, ledger_of, operator_view, require_admin
from proxy.ops.dashboard import session
from proxy.ops.dashboard.html import CSP, e
from proxy.ops.dashboard.pages import PAGES, PageContext, render_workflow
from proxy.ops.dashboard.window import window_for
from proxy.pipeline.auth import presented_key
from proxy.pipeline.render import as_spendgate_error, error_response

MAX_FORM_BYTES = 4096
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _admin_key(view: OperatorView) -> str | None:
    auth = view.settings.config.auth
    return auth.admin_key if auth else None


def _html(body: str, status: int = 200, extra: dict[str, str] | None = None) -> Response:
    return HTMLResponse(body, status_code=status, headers={**HEADERS, **(extra or {})})


def _safe_next(target: str | None) -> str:
    # Only the dashboard's own paths: never an open redirect to another site.
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return "/dashboard"


async def _gate(request: Request) -> Response | None:
    """None when the caller may see the dashboard, else the response to send."""
    admin_key = _admin_key(operator_view(request))
    if admin_key is None:
        return error_response(PermissionDeniedError("the dashboard needs auth.admin_key"))
    if presented_key(request.headers) is not None:
        try:
            await require_admin(request)
        except SpendgateError as exc:
            return error_response(exc)
        return None
    token = request.cookies.get(session.COOKIE)
    if session.valid(token, admin_key, now=datetime.now(UTC)):
        return None
    if "text/html" in request.headers.get("accept", ""):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/dashboard/login?next={quote(path, safe='')}", 303)
    return error_response(AuthenticationError("missing admin key or dashboard session"))


def login_form(target: str, *, message: str = "") -> str:
    note = f'<p class="err" id="login-error">{e(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Log in - Spendgate</title><style>body{font:14px system-ui,sans-serif;"
        "display:grid;place-items:center;height:90vh;background:#f6f7f9}form{background:#fff;"
        "padding:24px;border:1px solid #dde1e8;border-radius:6px;display:grid;gap:10px}"
        ".err{color:#b3261e}</style></head><body>"
        '<form method="post" action="/dashboard/login"><strong>Spendgate dashboard</strong>'
        f"{note}<label>Admin key <input type=password name=key id=key autofocus required>"
        f'</label><input type="hidden" name="next" value="{e(target)}">'
        '<button type="submit" id="login">Log in</button></form></body></html>'
    )


async def login_page(request: Request) -> Response:
    return _html(login_form(_safe_next(request.query_params.get("next"))))


async def login(request: Request) -> Response:
    """Check the admin key from the form; on success set the session cookie."""
    view = operator_view(request)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _html(login_form("/dashboard", message="Form too large."), 413)
    form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    key = (form.get("key") or [""])[0]
    target = _safe_next((form.get("next") or [""])[0])
    admin_key = _admin_key(view)
    try:
        await check_admin_key(view, request, key or None)
    except SpendgateError as exc:
        return _html(login_form(target, message=exc.message), exc.http_status, exc.headers)
    assert admin_key is not None  # authenticate_admin passed, so it is configured
    token = session.issue(admin_key, now=datetime.now(UTC))
    cookie = session.cookie_header(token, max_age=int(session.SESSION_TTL.total_seconds()))
    if request.url.scheme == "https":
        cookie += "; Secure"
    return Response(status_code=303, headers={**HEADERS, "location": target, "set-cookie": cookie})


async def logout(request: Request) -> Response:
    cookie = session.cookie_header("", max_age=0)
    return Response(
        status_code=303,
        headers={**HEADERS, "location": "/dashboard/login", "set-cookie": cookie},
    )


def _context(request: Request, view: OperatorView) -> PageContext:
    params = request.query_params
    store = ledger_of(view)
    win = window_for(
        params.get("period"), now=datetime.now(UTC), start=params.get("from"), end=params.get("to")
    )
    return PageContext(
        store=store,
        window=win,
        fee_rate=view.settings.config.ledger.fee_rate,
        budgets=(),
        tenant=params.get("tenant") or None,
        sort=params.get("sort"),
        descending=params.get("dir") != "asc",
    )


async def _ensure_indexed(request: Request, ctx: PageContext) -> None:
    # Built once per app, on the first page view, off the event loop; the lock
    # keeps concurrent first views from building the same indexes twice.
    state = request.app.state
    if getattr(state, "dashboard_indexed", False):
        return
    lock = getattr(state, "dashboard_index_lock", None)
    if lock is None:
        lock = state.dashboard_index_lock = asyncio.Lock()
    async with lock:
        if not getattr(state, "dashboard_indexed", False):
            await asyncio.to_thread(ensure_indexes, ctx.store)
            state.dashboard_indexed = True


async def _serve(request: Request, render: Callable[[PageContext], str]) -> Response:
    denied = await _gate(request)
    if denied is not None:
        return denied
    view = operator_view(request)
    try:
        ctx = _context(request, view)
        if render is PAGES["overview"]:
            budgets = await view.budget_usage()
            ctx = replace(ctx, budgets=tuple(budgets))
        await _ensure_indexed(request, ctx)
        html = await asyncio.to_thread(render, ctx)
    except RequestError as exc:
        return _html(f"<!doctype html><title>Bad request</title><p>{e(exc.message)}</p>", 400)
    except Exception as exc:  # rendered like every other error of the proxy
        error = as_spendgate_error(exc)
        return _html(
            f"<!doctype html><title>Error</title><p>{e(error.message)}</p>", error.http_status
        )
    return _html(html)


def page_handler(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return await _serve(request, PAGES[name])

    handler.__name__ = f"dashboard_{name}"
    return handler


async def workflow_page(request: Request) -> Response:
    name = request.path_params["name"]
    return await _serve(request, lambda ctx: render_workflow(ctx, name))
