"""Every request lands in the ledger as one row whose money matches the headers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from pricing.ledger import audit, create_key, open_ledger
from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio

MSGS = [{"role": "user", "content": "hello ledger"}]
ADMIN = {"authorization": "Bearer admin-secret"}


def ledger_settings(tmp_path: Path, **extra: object):
    return make_settings(
        ledger={"url": f"sqlite:///{tmp_path}/ledger.db"},
        auth={"admin_key": "admin-secret", "keys": [{"key": "team-a-key", "tenant": "team-a"}]},
        **extra,
    )


async def test_rows_match_headers_and_audit_passes(tmp_path: Path) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    recorder = Recorder(httpx.Response(200, json=completion(usage=usage)))
    headers = {
        "authorization": "Bearer team-a-key",
        "x-spendgate-agent": "planner",
        "x-spendgate-workflow": "triage",
    }
    async with proxy_client(recorder, ledger_settings(tmp_path)) as client:
        ok = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": MSGS}, headers=headers
        )
        bad = await client.post(
            "/v1/chat/completions", json={"model": "nope", "messages": MSGS}, headers=headers
        )
        hit = await client.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": MSGS}, headers=headers
        )
    assert ok.status_code == 200 and bad.status_code == 404 and hit.status_code == 200
    assert hit.headers["x-spendgate-cache"] == "exact"
    store = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    try:
        rows = list(store.iter_chain(tenant="team-a"))
        assert len(rows) == 3
        first = next(r for r in rows if r.request_id == ok.headers["x-spendgate-request-id"])
        # gpt-4o: 1000 x 2.50 + 100 x 10.00 = 3500 micro-dollars
        assert (first.cost, first.baseline_cost, first.savings) == (3500, 3500, 0)
        assert ok.headers["x-spendgate-cost-usd"] == "0.003500"
        assert (first.agent, first.workflow, first.usage_source) == (
            "planner",
            "triage",
            "upstream",
        )
        cached = next(r for r in rows if r.request_id == hit.headers["x-spendgate-request-id"])
        assert cached.cache_status == "exact" and (
            cached.cost,
            cached.baseline_cost,
            cached.savings,
        ) == (0, 3500, 3500)
        failed = next(r for r in rows if r.http_status == 404)
        assert failed.error_type == "invalid_request_error"
        assert audit(store).ok
    finally:
        store.close()


async def test_admin_export_summary_and_budgets(tmp_path: Path) -> None:
    recorder = Recorder(httpx.Response(200, json=completion()))
    settings = ledger_settings(
        tmp_path, budgets=[{"tenant": "team-a", "period": "day", "limit_usd": 5}]
    )
    now = datetime.now(UTC)
    params = {
        "from": (now - timedelta(days=1)).date().isoformat(),
        "to": (now + timedelta(days=1)).date().isoformat(),
    }
    async with proxy_client(recorder, settings) as client:
        for i in range(3):
            await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
                headers={"authorization": "Bearer team-a-key"},
            )
        for _ in range(50):  # the writer batches in the background: wait for the rows
            export = await client.get("/admin/export.csv", params=params, headers=ADMIN)
            if export.text.count("\n") >= 4:
                break
            await anyio.sleep(0.1)
        summary = await client.get(
            "/admin/summary", params={**params, "format": "json", "period": "all"}, headers=ADMIN
        )
        budgets = await client.get("/admin/budgets", headers=ADMIN)
        as_proxy_key = await client.get(
            "/admin/budgets", headers={"authorization": "Bearer team-a-key"}
        )
        anonymous = await client.get("/admin/export.csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert export.status_code == 200 and len(rows) == 3
    total = sum(int(r["cost_usd"].replace(".", "")) for r in rows)
    assert summary.json()[0]["cost_usd"] == f"{total // 1_000_000}.{total % 1_000_000:06d}"
    assert summary.json()[0]["requests"] == 3
    budget = budgets.json()["budgets"][0]
    assert budget["limit_usd"] == "5.000000" and budget["used_usd"] != "0.000000"
    assert as_proxy_key.status_code == 401 and anonymous.status_code == 401
    assert "error" in as_proxy_key.json()


async def test_keys_created_by_the_cli_authenticate(tmp_path: Path) -> None:
    key, key_id = create_key(f"sqlite:///{tmp_path}/ledger.db", "team-z")
    recorder = Recorder(httpx.Response(200, json=completion()))
    async with proxy_client(recorder, ledger_settings(tmp_path)) as client:
        ok = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": MSGS},
            headers={"authorization": f"Bearer {key}"},
        )
    assert ok.status_code == 200
    store = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    try:
        (row,) = list(store.iter_chain(tenant="team-z"))
        assert row.key_id == key_id
    finally:
        store.close()


async def test_a_cached_answer_to_auto_names_and_prices_its_model(tmp_path: Path) -> None:
    recorder = Recorder(httpx.Response(200, json=completion(model="gpt-4o-mini")))
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi there"}]}
    async with proxy_client(recorder, ledger_settings(tmp_path)) as client:
        first = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer team-a-key"}
        )
        again = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer team-a-key"}
        )
    assert (
        first.headers["x-spendgate-cache"] == "miss"
        and again.headers["x-spendgate-cache"] == "exact"
    )
    assert again.headers["x-spendgate-model"] == "gpt-4o-mini"
    assert again.headers["x-spendgate-cost-usd"] == "0.000000"
    assert again.headers["x-spendgate-savings-usd"] != "unknown"
