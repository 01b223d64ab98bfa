"""The dashboard served in-process: auth, totals against the summary, escaping, pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from pricing.cost import format_micro
from pricing.ledger import LedgerStore
from proxy.ops.dashboard import session
from proxy.server.app import create_app
from proxy.settings import Settings, parse_config
from tests.dashboard.ledger_rows import SPECS, make_row, sample_rows

ADMIN = "admin-secret-key"
PROXY_KEY = "proxy-key-of-t1"
CUSTOM = {"period": "custom", "from": "2026-11-10T00:00:00Z", "to": "2026-11-10T04:00:00Z"}
HTML = {"accept": "text/html,application/xhtml+xml"}
BEARER = {"authorization": f"Bearer {ADMIN}"}
XSS = "<script>alert(1)</script>"


def settings(tmp_path: Path) -> Settings:
    data: dict[str, Any] = {
        "providers": {
            "openai": {"type": "openai", "base_url": "https://api.openai.test/v1", "api_key": "x"}
        },
        "models": [
            {"name": "gpt-4o", "provider": "openai", "tier": "large"},
            {"name": "gpt-4o-mini", "provider": "openai", "tier": "small"},
        ],
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "fee_rate": "0.10"},
        "cache": {"backend": "memory"},
        "auth": {"admin_key": ADMIN, "keys": [{"key": PROXY_KEY, "tenant": "t1"}]},
        "budgets": [{"name": "daily-t1", "period": "day", "limit_usd": "5", "tenant": "t1"}],
    }
    config = parse_config(data, known_provider_types=("openai", "anthropic"))
    return Settings(config, "test")


@dataclass
class App:
    client: httpx.AsyncClient
    store: LedgerStore


def _refuse(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"error": "no upstream in these tests"})


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    asgi = create_app(
        settings(tmp_path), transport_factory=lambda limits: httpx.MockTransport(_refuse)
    )
    async with asgi.router.lifespan_context(asgi):
        store = asgi.state.runtime.stages.ledger
        assert store is not None
        rows = sample_rows()
        rows.append(make_row(50, SPECS[0], request_id="xss", agent=XSS, workflow=XSS))
        store.write_batch(rows)
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield App(client, store)


def stat(html: str, stat_id: str) -> str:
    found = re.search(rf'id="{stat_id}">([^<]*)<', html)
    assert found, f"no #{stat_id} in the page"
    return found.group(1)


@pytest.mark.anyio
async def test_totals_equal_the_admin_summary(app: App) -> None:
    page = await app.client.get("/dashboard", params=CUSTOM, headers=BEARER)
    assert page.status_code == 200, page.text
    summary = await app.client.get(
        "/admin/summary",
        params={"period": "all", "format": "json", "from": CUSTOM["from"], "to": CUSTOM["to"]},
        headers=BEARER,
    )
    rows = summary.json()
    assert {r["tenant"] for r in rows} == {"t1", "t2"}

    def total(field: str) -> int:
        return sum(int(Decimal(r[field]) * 1_000_000) for r in rows)

    html = page.text
    assert stat(html, "total-requests") == str(sum(r["requests"] for r in rows)) == "7"
    assert stat(html, "total-cost") == f"${format_micro(total('cost_usd'))}"
    assert stat(html, "total-baseline") == f"${format_micro(total('baseline_cost_usd'))}"
    assert stat(html, "total-savings") == f"${format_micro(total('savings_usd'))}"
    assert stat(html, "total-fee") == f"${format_micro(total('fee_usd'))}"
    # By hand: savings 200 + 300 + 0 + 40 + 0 + 200 (the extra row) = 740; fee 10% of t1's.
    assert stat(html, "total-savings") == "$0.000740"
    assert stat(html, "total-fee") == "$0.000074"
    assert stat(html, "total-unpriced") == "1"


@pytest.mark.anyio
async def test_auth(app: App) -> None:
    c = app.client
    api = await c.get("/dashboard")
    assert api.status_code == 401
    browser = await c.get("/dashboard/agents?period=7d", headers=HTML)
    assert browser.status_code == 303
    assert browser.headers["location"].startswith("/dashboard/login?next=%2Fdashboard%2Fagents")
    proxy_key = await c.get("/dashboard", headers={"authorization": f"Bearer {PROXY_KEY}"})
    assert proxy_key.status_code == 401
    # A cookie holding a proxy key or a forged token is no session.
    for cookie in (PROXY_KEY, ADMIN, "99999999999.deadbeef"):
        forged = await c.get("/dashboard", headers={**HTML, "cookie": f"spendgate_admin={cookie}"})
        assert forged.status_code == 303
    ok = await c.get("/dashboard", headers=BEARER)
    assert ok.status_code == 200
    assert "default-src 'none'" in ok.headers["content-security-policy"]


@pytest.mark.anyio
async def test_login_form_sets_a_signed_session_cookie(app: App) -> None:
    c = app.client
    form = await c.get("/dashboard/login?next=%2Fdashboard%2Fmodels")
    assert form.status_code == 200 and 'name="next" value="/dashboard/models"' in form.text
    wrong = await c.post("/dashboard/login", data={"key": PROXY_KEY, "next": "/dashboard"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    good = await c.post("/dashboard/login", data={"key": ADMIN, "next": "/dashboard/models"})
    assert good.status_code == 303 and good.headers["location"] == "/dashboard/models"
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert ADMIN not in token
    assert session.valid(token, ADMIN, now=datetime.now(UTC))
    assert not session.valid(token, "another-admin-key", now=datetime.now(UTC))
    assert not session.valid(token, ADMIN, now=datetime.now(UTC) + timedelta(days=1))
    page = await c.get("/dashboard/models", headers={**HTML, "cookie": f"spendgate_admin={token}"})
    assert page.status_code == 200 and 'id="models"' in page.text
    offsite = await c.post("/dashboard/login", data={"key": ADMIN, "next": "//evil.test/x"})
    assert offsite.headers["location"] == "/dashboard"
    out = await c.post("/dashboard/logout")
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]


@pytest.mark.anyio
async def test_user_supplied_labels_are_escaped(app: App) -> None:
    for path in ("/dashboard/agents", "/dashboard/workflows"):
        page = await app.client.get(path, params=CUSTOM, headers=BEARER)
        assert page.status_code == 200
        assert XSS not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    drill = await app.client.get(
        "/dashboard/workflow/%3Cscript%3Ealert(1)%3C%2Fscript%3E", params=CUSTOM, headers=BEARER
    )
    assert drill.status_code == 200 and XSS not in drill.text
    assert "Workflow &lt;script&gt;" in drill.text


@pytest.mark.anyio
async def test_tables_sort_and_drill_down(app: App) -> None:
    page = await app.client.get(
        "/dashboard/workflows", params={**CUSTOM, "sort": "requests", "dir": "asc"}, headers=BEARER
    )
    table = page.text.split('id="workflows"', 1)[1].split("</table>", 1)[0]
    names = re.findall(r'data-col="name">(?:<a href="([^"]*)">)?([^<]*)<', table)
    requests = [int(n) for n in re.findall(r'data-col="requests">(\d+)<', table)]
    assert requests == sorted(requests) and sum(requests) == 7
    links = {name: href for href, name in names}
    assert links["w"].startswith("/dashboard/workflow/w?period=custom")
    assert links["(none)"] == ""
    steps = await app.client.get(links["w"].replace("&amp;", "&"), headers=BEARER)
    assert steps.status_code == 200
    assert re.search(r'data-col="name">s1</td><td class="n" data-col="requests">2<', steps.text)


@pytest.mark.anyio
async def test_models_and_budgets_panels(app: App) -> None:
    models = await app.client.get("/dashboard/models", params=CUSTOM, headers=BEARER)
    assert "upstream_error" in models.text and "rate_limit_error" in models.text
    # gpt-4o-mini served 4 of the 7 requests (the extra row included); one was routed away.
    row = models.text.split('data-col="name">gpt-4o-mini</td>', 1)[1].split("</tr>", 1)[0]
    assert 'data-col="requests">4<' in row and 'data-col="routing">57.1%<' in row
    overview = await app.client.get("/dashboard", params={"period": "1h"}, headers=BEARER)
    assert "daily-t1" in overview.text and "$5.000000" in overview.text


@pytest.mark.anyio
async def test_bad_period_is_a_400(app: App) -> None:
    for params in ({"period": "2y"}, {"period": "custom", "from": "2026-11-10"}):
        page = await app.client.get("/dashboard", params=params, headers=BEARER)
        assert page.status_code == 400
