"""Upstream faults, through the official openai SDK: an OpenAI-shaped outcome in time, one ledger row each."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e_reliability.harness import (
    DRAIN_TIMEOUT_S,
    PRICE,
    SIM_KEY,
    sim_config,
    sqlite_request_ids,
)
from tests.support.processes import free_port
from tests.support.servers import Proxy, Simulator, start_proxy, start_simulator

pytestmark = pytest.mark.e2e

DEADLINE_S = 5.0
MARGIN_S = 2.0
READ_TIMEOUT_S = 0.5
ATTEMPTS = 2
MODES = ("429", "500", "503", "malformed_json", "cut_stream", "malformed_sse", "timeout", "refused")


@dataclass
class Outcome:
    """What the SDK made of one request."""

    request_id: str | None
    status: int | None  # the HTTP status, when the error came before the stream began
    error: dict[str, Any] | None
    retry_after: str | None
    mid_stream_error: str | None
    finished: bool
    elapsed_s: float


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    simulator = start_simulator(tmp_path_factory.mktemp("sim"), hold_s=3.0)
    try:
        yield simulator
    finally:
        simulator.process.stop(timeout_s=5)


def fault_config(sim: Simulator, ledger: Path) -> dict[str, Any]:
    config = sim_config(sim, f"sqlite:///{ledger}")
    dead = free_port()  # nothing listens there: connection refused
    providers = config["providers"]
    for kind, base in (("openai", sim.openai_base_url), ("anthropic", sim.base_url)):
        dead_base = f"http://127.0.0.1:{dead}" + ("/v1" if kind == "openai" else "")
        providers[f"{kind}-short"] = {
            "type": kind, "base_url": base, "api_key": SIM_KEY, "read_timeout_s": READ_TIMEOUT_S,
        }  # fmt: skip
        providers[f"{kind}-dead"] = {"type": kind, "base_url": dead_base, "api_key": SIM_KEY}
        for suffix, provider in (("f", kind), ("t", f"{kind}-short"), ("dead", f"{kind}-dead")):
            name = f"{kind}-{suffix}"
            config["models"].append(
                {"name": name, "provider": provider, "upstream": name, "price": PRICE}
            )
    config["routing"] = {
        "max_attempts": ATTEMPTS,
        "deadline_s": DEADLINE_S,
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        "breaker_failures": 1000,
    }
    return config


def call(client: openai.OpenAI, model: str, *, stream: bool) -> Outcome:
    started = time.monotonic()
    messages: Any = [{"role": "user", "content": f"fault test {uuid.uuid4().hex}"}]
    request_id: str | None = None
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=messages,
            stream=stream,
        )
        request_id = raw.headers.get("x-spendgate-request-id")
        parsed: Any = raw.parse()
        finished = True
        if stream:
            reasons = [c.choices[0].finish_reason for c in parsed if c.choices]
            finished = bool(reasons) and reasons[-1] is not None
        return Outcome(request_id, 200, None, None, None, finished, time.monotonic() - started)
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else None
        return Outcome(
            exc.response.headers.get("x-spendgate-request-id"),
            exc.status_code,
            body,
            exc.response.headers.get("retry-after"),
            None,
            False,
            time.monotonic() - started,
        )
    except openai.APIError as exc:  # an error event after the stream had begun
        return Outcome(request_id, None, None, None, exc.message, False, time.monotonic() - started)


EXPECTED: dict[str, tuple[int, str | None]] = {
    # mode: (status, error code) for an error seen before any byte of the answer
    "429": (429, "rate_limit_exceeded"),
    "500": (502, None),
    "503": (502, None),
    "malformed_json": (502, "upstream_bad_response"),
    "cut_stream": (502, "upstream_bad_response"),
    "malformed_sse": (502, "upstream_bad_response"),
    "timeout": (504, "upstream_timeout"),
    "refused": (502, "upstream_unreachable"),
}


def problems_with(outcome: Outcome, mode: str, *, stream: bool) -> list[str]:
    problems: list[str] = []
    if outcome.elapsed_s > DEADLINE_S + MARGIN_S:
        problems.append(f"took {outcome.elapsed_s:.1f} s, over the {DEADLINE_S} s deadline")
    if outcome.request_id is None:
        problems.append("no x-spendgate-request-id")
    if outcome.mid_stream_error is not None:
        if not (stream and mode in ("cut_stream", "malformed_sse")):
            problems.append(f"unexpected mid-stream error {outcome.mid_stream_error!r}")
        return problems
    status, code = EXPECTED[mode]
    if outcome.status != status:
        problems.append(f"status {outcome.status}, expected {status}: {outcome.error}")
    error = outcome.error or {}
    if set(error) != {"message", "type", "param", "code"}:
        problems.append(f"not OpenAI's error shape: {outcome.error}")
    if code is not None and error.get("code") != code:
        problems.append(f"code {error.get('code')!r}, expected {code!r}")
    if mode == "429" and not (outcome.retry_after or "").isdigit():
        problems.append(f"429 without a numeric Retry-After ({outcome.retry_after!r})")
    return problems


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_every_upstream_fault_is_answered_in_time_and_recorded_once(
    sim: Simulator, tmp_path: Path, kind: str
) -> None:
    ledger = tmp_path / "ledger.db"
    proxy = start_proxy(
        fault_config(sim, ledger), tmp_path, kind=Proxy, stop_timeout_s=DRAIN_TIMEOUT_S
    )
    outcomes: list[tuple[str, bool, Outcome]] = []
    try:
        client = openai.OpenAI(
            base_url=proxy.openai_base_url, api_key="unused", max_retries=0, timeout=30
        )
        healthy = call(client, f"{kind}-f", stream=False)
        assert healthy.status == 200, healthy
        for mode in MODES:
            for stream in (False, True):
                model = {"timeout": f"{kind}-t", "refused": f"{kind}-dead"}.get(mode, f"{kind}-f")
                if mode != "refused":
                    sim.arm(mode, count=ATTEMPTS, model=model)
                outcomes.append((mode, stream, call(client, model, stream=stream)))
                sim.reset()
    finally:
        code = proxy.process.stop()
    assert code in (0, -15), proxy.process.describe()
    report = [
        f"{mode} stream={stream}: {problem}"
        for mode, stream, outcome in outcomes
        for problem in problems_with(outcome, mode, stream=stream)
    ]
    ids = Counter(sqlite_request_ids(ledger))
    sent = [o.request_id for _, _, o in [*outcomes, ("", False, healthy)] if o.request_id]
    report += [f"request {rid}: {ids[rid]} ledger rows" for rid in sent if ids[rid] != 1]
    if sum(ids.values()) != len(outcomes) + 1:
        report.append(f"{sum(ids.values())} ledger rows for {len(outcomes) + 1} requests")
    assert not report, "\n".join(report)
