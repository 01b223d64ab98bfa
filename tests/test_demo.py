"""``spendgate demo``: it runs offline, and its report is exactly what the ledger says."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from pricing.ledger import LedgerRow, audit, open_ledger, summary, with_costs
from proxy.demo.report import (
    attempted_models,
    build_report,
    format_report,
    percent,
    usd,
    wait_for_rows,
)
from proxy.demo.workload import Models, Progress, load_prompts, plan_workload

DEMO_TIMEOUT_S = 60
NEUTRAL = ("user", "metadata", "store")
MONEY = r"(-?\$\d+\.\d{6})"


def clean_env() -> dict[str, str]:
    """Our environment without provider keys, config or metrics settings."""
    drop = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SPENDGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def micro(text: str) -> int:
    """``$1.234567`` (or ``-$...``) as integer micro-dollars."""
    sign = -1 if text.startswith("-") else 1
    return sign * int(Decimal(text.lstrip("-$")) * 1_000_000)


def field(report: str, label: str) -> str:
    match = re.search(rf"^\s*{re.escape(label)}\s+(.*)$", report, re.MULTILINE)
    assert match, f"no {label!r} line in the report:\n{report}"
    return match.group(1)


def test_demo_report_matches_the_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--no-serve", "--ledger", str(ledger)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "simulated provider" in done.stderr
    assert field(out, "ledger:") == str(ledger)

    store = open_ledger(f"sqlite:///{ledger}")
    try:
        now = datetime.now(UTC)
        totals = summary(
            store, start=now - timedelta(days=1), end=now + timedelta(days=1),
            fee_rate=Decimal("0.10"), period="all",
        )  # fmt: skip
        rows = list(store.iter_rows(start=now - timedelta(days=1), end=now + timedelta(days=1)))
        chain = audit(store)
    finally:
        store.close()
    assert chain.ok
    assert len(totals) == 1
    total = totals[0]

    assert int(field(out, "requests").split()[0]) == total.requests == len(rows) == 300
    assert micro(re.findall(MONEY, field(out, "cost"))[0]) == total.cost
    assert micro(re.findall(MONEY, field(out, "baseline"))[0]) == total.baseline_cost
    savings = micro(re.findall(MONEY, field(out, "savings"))[0])
    assert savings == total.savings > 0
    fee = micro(re.findall(MONEY, field(out, "fee (10% of savings)"))[0])
    assert fee == total.fee > 0

    hits = Counter(r.cache_status for r in rows)
    assert field(out, "cache hits").startswith(
        f"{hits['exact'] + hits['semantic']} ({hits['exact']} exact, {hits['semantic']} semantic),"
    )
    assert hits["exact"] > 0
    fell_back = sum(1 for r in rows if len(attempted_models(r)) > 1)
    retried = sum(1 for r in rows if r.attempts > 1)
    assert retried > 0
    assert field(out, "upstream trouble").startswith(
        f"{retried} requests retried, {fell_back} fell back"
    )
    served = Counter(
        r.served_model for r in rows if r.cache_status == "miss" and r.http_status < 400
    )
    mix = field(out, "routing mix")
    for model, tier in (("gpt-4o-mini", "small"), ("gpt-4.1-mini", "medium"), ("gpt-4o", "large")):
        assert f"{tier} {served[model]} (" in mix
    triage = Counter(
        r.served_model
        for r in rows
        if r.workflow == "support-triage" and r.cache_status == "miss" and r.http_status < 400
    )
    tiers = {"gpt-4o-mini": "small", "gpt-4.1-mini": "medium", "gpt-4o": "large"}
    expected = ", ".join(
        f"{tiers[m]} {triage[m]}" for m in ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o") if triage[m]
    )
    assert f"support-triage: {expected}\n" in out

    cost_by_workflow: Counter[str] = Counter()
    for row in rows:
        cost_by_workflow[row.workflow or "(untagged)"] += row.cost or 0
    top = out.split("Top 5 workflows by cost\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(top) == 5
    for line in top:
        name = line.split()[0]
        assert micro(re.findall(MONEY, line)[0]) == cost_by_workflow[name]
    assert {r.agent for r in rows} >= {"triage-bot", "planner", "reviewer", "concierge"}


def test_demo_serves_until_interrupted(tmp_path: Path) -> None:
    args = ["demo", "--requests", "30", "--port", "0", "--ledger", str(tmp_path / "l.db")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", *args],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while not any("admin key" in line for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        dashboard = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+)/dashboard", text)
        admin = re.search(r"admin key\s+(\S+)", text)
        assert dashboard and admin, text
        base = dashboard.group(1)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert "spendgate_requests_total" in metrics
        answer = httpx.get(
            f"{base}/admin/summary", params={"format": "json", "period": "all"},
            headers={"authorization": f"Bearer {admin.group(1)}"}, timeout=5,
        )  # fmt: skip
        assert answer.status_code == 200
        assert json.loads(answer.text)[0]["requests"] == 30
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_the_workload_is_deterministic_and_covers_every_workflow() -> None:
    prompts = load_prompts()
    models = Models(requested="big-model", pinned="small-model")
    calls = plan_workload(prompts, total=200, models=models)
    assert len(calls) == 200
    assert calls == plan_workload(prompts, total=200, models=models)
    assert {c.workflow for c in calls} == {
        "support-triage", "invoice-extraction", "research-report", "code-review",
        "travel-concierge",
    }  # fmt: skip
    assert any("tools" in c.body for c in calls)
    assert {c.body["model"] for c in calls} == {"big-model", "small-model"}
    # Repeats: the same question (answer-neutral fields aside) asked more than once.
    questions = Counter(
        json.dumps({k: v for k, v in c.body.items() if k not in NEUTRAL}, sort_keys=True)
        for c in calls
    )
    assert max(questions.values()) > 1
    near = [c for c in calls if any(k in c.body for k in NEUTRAL)]
    assert near
    tags = calls[0].headers()
    assert set(tags) == {
        "x-spendgate-agent", "x-spendgate-workflow", "x-spendgate-step", "x-spendgate-run",
    }  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal_and_prints_lines_elsewhere() -> None:
    tty, plain = _Tty(), io.StringIO()
    for out in (tty, plain):
        progress = Progress(total=50, out=out)
        for i in range(50):
            progress.advance(500 if i == 3 else 200)
    assert tty.getvalue().count("\r") == 50
    assert tty.getvalue().endswith("50/50 requests, 1 failed\n")
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue()
    assert len(lines) == 10
    assert lines[-1] == "replayed 50/50 requests"


def test_percentages_round_half_up_on_either_side_of_zero() -> None:
    assert percent(1, 3) == "33.3%"
    assert percent(-15, 1000) == "-1.5%"
    assert percent(2, 3) == "66.7%"
    assert percent(0, 5) == "0.0%"
    assert percent(1, 0) == "n/a"


def test_usd_formats_micro_dollars_exactly() -> None:
    assert usd(1_234_567) == "$1.234567"
    assert usd(-5) == "-$0.000005"
    assert usd(0) == "$0.000000"


def _row(n: int, ts: datetime, **fields: Any) -> LedgerRow:
    base: dict[str, Any] = {
        "request_id": f"req-{n}", "ts": ts, "tenant": "acme", "requested_model": "gpt-4o",
        "served_model": "gpt-4o-mini", "baseline_model": "gpt-4o", "provider": "sim",
        "prompt_tokens": 1000, "completion_tokens": 200, "usage_source": "upstream",
        "price_source": "catalog", "price_input": Decimal("0.15"), "price_output": Decimal("0.60"),
        "price_cached_input": Decimal("0.075"), "price_cache_write": Decimal("0.15"),
        "baseline_prompt_tokens": 1000, "baseline_completion_tokens": 200,
        "baseline_price_source": "catalog", "baseline_price_input": Decimal("2.50"),
        "baseline_price_output": Decimal("10.00"), "baseline_price_cached_input": Decimal("1.25"),
        "baseline_price_cache_write": Decimal("2.50"), "attempts": 1, "attempts_detail": "[]",
    }  # fmt: skip
    base.update(fields)
    return with_costs(LedgerRow(**base))


def test_the_report_reads_only_this_replay_from_the_ledger(tmp_path: Path) -> None:
    store = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    earlier = datetime(2026, 1, 5, tzinfo=UTC)
    now = datetime.now(UTC).replace(microsecond=0)
    two_models = '[{"model":"gpt-4.1-mini"},{"model":"gpt-4o"}]'
    rows = [
        _row(0, earlier, workflow="old"),  # a previous run in the same file
        _row(1, now, workflow="a"),
        _row(2, now, workflow="a", cache_status="exact"),
        _row(3, now, workflow="b", served_model="gpt-4o", price_input=Decimal("2.50"),
             price_output=Decimal("10.00"), price_cached_input=Decimal("1.25"),
             price_cache_write=Decimal("2.50"), attempts=2, attempts_detail=two_models),
        _row(4, now, workflow=None, http_status=502, served_model="", usage_source="none",
             prompt_tokens=0, completion_tokens=0, baseline_prompt_tokens=0,
             baseline_completion_tokens=0),
    ]  # fmt: skip
    try:
        store.write_batch(rows)
        end = now + timedelta(minutes=1)
        assert wait_for_rows(store, start=now, end=end, expected=4, timeout_s=1) == 4
        report = build_report(
            store, start=now, end=end, fee_rate=Decimal("0.10"),
            tiers={"gpt-4o-mini": "small", "gpt-4o": "large"},
        )  # fmt: skip
        (expected,) = summary(store, start=now, end=end, fee_rate=Decimal("0.10"), period="all")
    finally:
        store.close()
    assert report.requests == 4
    assert (report.cost, report.baseline_cost, report.savings, report.fee) == (
        expected.cost, expected.baseline_cost, expected.savings, expected.fee,
    )  # fmt: skip
    assert report.cost == 270 + 0 + 4_500  # the cache hit cost nothing
    # Baseline 4,500 each; served 270 (small), 0 (cache hit), 4,500 (large); the failure 0.
    assert report.savings == 4_230 + 4_500 + 0
    assert report.fee == 873
    assert report.cache_hits == {"exact": 1}
    assert report.tiers == {"small": 1, "large": 1}
    assert report.workflow_tiers == {"(untagged)": {}, "a": {"small": 1}, "b": {"large": 1}}
    assert (report.failed, report.retried, report.fell_back) == (1, 1, 1)
    assert [(w.workflow, w.requests) for w in report.top_workflows] == [
        ("b", 1), ("a", 2), ("(untagged)", 1),
    ]  # fmt: skip
    text = format_report(report, tier_order=("small", "medium", "large"))
    assert "fee (10% of savings)  $0.000873" in text
    assert "small 1 (50.0%), medium 0 (0.0%), large 1 (50.0%)" in text
    assert "a: small 1\n" in text and "b: large 1\n" in text
    assert "(untagged)     1 request " in text


def test_the_prompts_ship_with_the_package() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["proxy.demo"]
    assert any(fnmatch.fnmatch("data/demo_prompts.json", p) for p in patterns), patterns
