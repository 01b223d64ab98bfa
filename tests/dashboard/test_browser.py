"""The dashboard in a real browser, against a real proxy process and the simulator.

Chromium (Debian's ``/usr/bin/chromium``) is driven through Playwright's
Python package with its own executable, never a downloaded browser.
Screenshots of every page go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from pricing.cost import fee_micro, format_micro
from pricing.ledger import LedgerRow, open_ledger, summary
from tests.dashboard.processes import REPO, start_proxy, start_simulator

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
ADMIN = "browser-admin-key"
PROXY_KEY = "browser-proxy-key"
XSS = "<script>alert(1)</script>"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# (agent, workflow, step, prompt): the repeated prompt is answered by the exact cache.
CALLS = [
    ("planner", "research", "plan", "Plan a trip to Lisbon."),
    ("planner", "research", "plan", "Plan a trip to Lisbon."),
    ("writer", "research", "draft", "Write two lines about the sea."),
    ("writer", "support", "answer", "How do I reset my password?"),
    (XSS, "support", "triage", "Classify: my invoice is wrong."),
    ("writer", "support", "answer", "Summarise the ticket in one line."),
]


def _need_browser() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"the playwright package is not installed: {exc}")
    if not CHROMIUM.exists():
        _unavailable("/usr/bin/chromium is not installed (apt-get install chromium)")
    return sync_playwright


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(proxy base URL, ledger URL) of a proxy whose provider is the simulator."""
    sim, sim_url = start_simulator(tmp_path)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = {
        "providers": {"openai": {"type": "openai", "base_url": f"{sim_url}/v1", "api_key": "sim"}},
        "models": [
            {"name": "gpt-4o", "provider": "openai", "tier": "large"},
            {"name": "gpt-4o-mini", "provider": "openai", "tier": "small"},
        ],
        "ledger": {"url": ledger_url},
        "cache": {"backend": "memory"},
        "auth": {"admin_key": ADMIN, "keys": [{"key": PROXY_KEY, "tenant": "acme"}]},
        "budgets": [{"name": "acme-daily", "period": "day", "limit_usd": "2", "tenant": "acme"}],
    }
    try:
        proxy, base = start_proxy(config, tmp_path)
    except BaseException:
        sim.stop()
        raise
    try:
        yield base, ledger_url
    finally:
        proxy.stop()
        sim.stop()


def _send_calls(base: str) -> None:
    with httpx.Client(base_url=base, timeout=20.0) as client:
        for agent, workflow, step, prompt in CALLS:
            response = client.post(
                "/v1/chat/completions",
                headers={
                    "authorization": f"Bearer {PROXY_KEY}",
                    "x-spendgate-agent": agent,
                    "x-spendgate-workflow": workflow,
                    "x-spendgate-step": step,
                },
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]},
            )
            assert response.status_code == 200, response.text


def _ledger_rows(url: str, start: datetime, end: datetime) -> list[LedgerRow]:
    store = open_ledger(url, create=False)
    try:
        deadline = time.monotonic() + 10
        while store.count() < len(CALLS) and time.monotonic() < deadline:
            time.sleep(0.1)  # the writer flushes every 0.2 s
        return list(store.iter_rows(start=start, end=end))
    finally:
        store.close()


def _cell(page: Any, table: str, name: str, column: str) -> str:
    row = page.locator(f"#{table} tbody tr").filter(
        has=page.locator('td[data-col="name"]', has_text=name)
    )
    text: str = row.locator(f'td[data-col="{column}"]').inner_text()
    return text


def test_dashboard_in_chromium(served: tuple[str, str]) -> None:
    sync_playwright = _need_browser()
    base, ledger_url = served
    _send_calls(base)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=2)
    rows = _ledger_rows(ledger_url, start, end)
    assert len(rows) == len(CALLS)
    window = f"period=custom&from={start:%Y-%m-%dT%H:%M:%S}Z&to={end:%Y-%m-%dT%H:%M:%S}Z"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    profile = tempfile.mkdtemp(prefix="spendgate-chromium-")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page()

            def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            _check_pages(page, base, window, rows, ledger_url, start, end)
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert dialogs == [], "a user-supplied label ran as script"


def _check_pages(
    page: Any,
    base: str,
    window: str,
    rows: list[LedgerRow],
    ledger_url: str,
    start: datetime,
    end: datetime,
) -> None:
    page.goto(f"{base}/dashboard?{window}")
    assert "/dashboard/login" in page.url
    page.fill("#key", PROXY_KEY)
    page.click("#login")
    assert "invalid admin key" in page.inner_text("#login-error")
    page.fill("#key", ADMIN)
    page.click("#login")
    page.wait_for_selector("#total-requests")
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    store = open_ledger(ledger_url, create=False)
    try:
        (totals,) = summary(store, start=start, end=end, fee_rate=Decimal("0.10"), period="all")
    finally:
        store.close()
    assert page.inner_text("#total-requests") == str(totals.requests) == str(len(CALLS))
    assert page.inner_text("#total-cost") == f"${format_micro(totals.cost)}"
    assert page.inner_text("#total-savings") == f"${format_micro(totals.savings)}"
    assert (
        page.inner_text("#total-fee")
        == f"${format_micro(fee_micro(totals.savings, Decimal('0.10')))}"
    )
    exact = sum(1 for r in rows if r.cache_status == "exact")
    assert exact >= 1
    assert page.inner_text("#exact-rate") == f"{exact / len(rows) * 100:.1f}%"
    assert "acme-daily" in page.inner_text("#budgets")

    page.click("text=Agents")
    page.wait_for_selector("#agents")
    page.screenshot(path=str(ARTIFACTS / "agents.png"), full_page=True)
    for agent in ("planner", "writer", XSS):
        mine = [r for r in rows if r.agent == agent]
        assert _cell(page, "agents", agent, "requests") == str(len(mine))
        cost = sum(r.cost or 0 for r in mine if r.savings is not None)
        assert _cell(page, "agents", agent, "cost") == f"${format_micro(cost)}"

    page.click("text=Workflows")
    page.wait_for_selector("#workflows")
    page.screenshot(path=str(ARTIFACTS / "workflows.png"), full_page=True)
    page.click('#workflows a:text-is("support")')
    page.wait_for_selector("#steps")
    page.screenshot(path=str(ARTIFACTS / "workflow-support.png"), full_page=True)
    for step in ("answer", "triage"):
        mine = [r for r in rows if r.workflow == "support" and r.step == step]
        assert _cell(page, "steps", step, "requests") == str(len(mine))
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in mine)
        assert _cell(page, "steps", step, "tokens") == str(tokens)

    page.click("text=Models")
    page.wait_for_selector("#models")
    page.screenshot(path=str(ARTIFACTS / "models.png"), full_page=True)
    for model in {r.served_model for r in rows}:
        served = [r for r in rows if r.served_model == model]
        assert _cell(page, "models", model, "requests") == str(len(served))
