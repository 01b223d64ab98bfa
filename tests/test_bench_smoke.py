"""``python -m bench --smoke`` runs end to end and reports every scenario.

No timing is asserted: only that each scenario was measured both direct to
the fake upstream and through Spendgate, with numbers in both.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.overhead import DEFAULT_REDIS_URL, SMOKE_SIZES, redis_reachable, scenarios

REPO = Path(__file__).resolve().parents[1]
SMOKE_TIMEOUT_S = 540

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(SMOKE_TIMEOUT_S + 60)]


def _require_redis() -> None:
    if redis_reachable(DEFAULT_REDIS_URL):
        return
    message = f"Redis unreachable at {DEFAULT_REDIS_URL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _require_redis()
    output = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    doc: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return doc


def test_every_scenario_is_measured_direct_and_through_spendgate(smoke: dict[str, Any]) -> None:
    expected = {s.name for s in scenarios(SMOKE_SIZES)}
    assert set(smoke["scenarios"]) == expected
    for name, entry in smoke["scenarios"].items():
        for target in ("direct", "spendgate"):
            summary = entry["results"][target]
            assert summary["requests"] > 0, (name, target)
            assert _is_number(summary["rps"]) and summary["rps"] > 0, (name, target)
            for q in ("p50", "p90", "p99"):
                assert _is_number(summary["latency_ms"][q]), (name, target, q)
        assert _is_number(entry["overhead"]["p50_ms"]), name


def test_streams_report_time_to_first_byte(smoke: dict[str, Any]) -> None:
    entry = smoke["scenarios"]["stream_ttfb_c1"]
    for target in ("direct", "spendgate"):
        assert _is_number(entry["results"][target]["ttfb_ms"]["p50"]), target
    assert entry["overhead"]["metric"] == "ttfb_ms"


def test_every_answer_was_a_success(smoke: dict[str, Any]) -> None:
    for name, entry in smoke["scenarios"].items():
        for target, summary in entry["results"].items():
            assert set(summary["statuses"]) == {"200"}, (name, target, summary["statuses"])
            assert summary["transport_errors"] == 0, (name, target)


def test_proxy_memory_is_read_before_and_after(smoke: dict[str, Any]) -> None:
    rss = smoke["rss"]
    assert _is_number(rss["main_before_mib"]) and rss["main_before_mib"] > 0
    assert _is_number(rss["main_after_mib"]) and rss["main_after_mib"] > 0
    assert "targets" not in smoke  # the smoke run checks no thresholds
