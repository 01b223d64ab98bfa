"""Real processes for the routing end-to-end tests: simulated providers and proxies.

Two ``python -m proxy.simulator`` processes act as two providers, so a
fallback to "the same tier on another provider" is visible in each one's
counters. Proxies run as ``python -m proxy.cli serve`` (optionally with
``--workers N``); their ledger is read back after a SIGTERM, which flushes it.
Children write their output to files: a pipe nobody reads would block them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pricing.ledger import open_ledger
from pricing.ledger.row import LedgerRow

REPO = Path(__file__).resolve().parents[2]
TIKTOKEN_DIR = REPO / ".." / "shared" / "data" / "tiktoken"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
SIM_KEY = "sim-key"
ADMIN_KEY = "admin-secret"
# How long the simulator's ``timeout`` fault holds a request: well past the
# short read timeouts the proxies get, short enough not to stall teardown.
SIM_HOLD_S = 3.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tag() -> str:
    """A short random tag for names that must not collide across runs."""
    return uuid.uuid4().hex[:10]


def child_env() -> dict[str, str]:
    """Our environment without a config file, plus the verified tiktoken files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDGATE_")}
    if TIKTOKEN_DIR.is_dir():
        env["SPENDGATE_TIKTOKEN_DIR"] = str(TIKTOKEN_DIR.resolve())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Process:
    """A child process whose stdout and stderr go to files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def output(self) -> str:
        out = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        err = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return (
            f"{self.name} (exit {self.popen.poll()})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )

    def stop(self) -> None:
        """SIGTERM (a proxy flushes its ledger on it), then SIGKILL if it hangs."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_TIMEOUT_S)


def spawn(name: str, args: Sequence[str], *, workdir: Path) -> Process:
    """Start ``python args...`` in ``workdir`` with output captured to files."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        popen = subprocess.Popen(
            [sys.executable, *args],
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=child_env(),
            cwd=str(workdir),
        )
    return Process(name, popen, out, err)


class StartupError(RuntimeError):
    """A child process did not become ready in time."""


def wait_for(process: Process, ready: Any, *, timeout_s: float = START_TIMEOUT_S) -> Any:
    """Poll ``ready()`` until truthy; stop the child and raise with its output otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StartupError(f"exited during start-up: {process.output()}")
        value = ready()
        if value:
            return value
        time.sleep(0.05)
    process.stop()
    raise StartupError(f"not ready after {timeout_s} s: {process.output()}")


@dataclass
class Simulator:
    """One simulated provider process and its control endpoints."""

    process: Process
    base_url: str

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def arm(self, mode: str, *, model: str, count: int = 1) -> None:
        """Give the next ``count`` requests for upstream ``model`` the fault ``mode``."""
        body = {"mode": mode, "count": count, "model": model}
        httpx.post(f"{self.base_url}/_sim/faults", json=body, timeout=5.0).raise_for_status()

    def calls(self, model: str) -> int:
        """Requests seen for upstream ``model`` since start or the last reset."""
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=5.0)
        response.raise_for_status()
        count: int = response.json()["by_model"].get(model, 0)
        return count

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/_sim/reset", timeout=5.0).raise_for_status()


def start_simulator(workdir: Path, name: str) -> Simulator:
    """Start a simulator on a free port and wait for its listening line."""
    process = spawn(
        name,
        ["-m", "proxy.simulator", "--port", "0", "--timeout-s", str(SIM_HOLD_S)],
        workdir=workdir,
    )
    marker = "simulated provider listening on "

    def listening() -> str | None:
        for line in process.stdout_path.read_text(encoding="utf-8").splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        return None

    return Simulator(process, wait_for(process, listening))


def healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Proxy:
    """A ``spendgate serve`` process and the files it writes."""

    process: Process
    base_url: str
    ledger_url: str
    request_ids: list[str] = field(default_factory=list)

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def stop(self) -> None:
        self.process.stop()

    def rows(self) -> list[LedgerRow]:
        """Every ledger row written so far (all of them once ``stop`` has flushed)."""
        store = open_ledger(self.ledger_url, create=False)
        try:
            return list(store.iter_chain())
        finally:
            store.close()

    def row(self, request_id: str, *, timeout_s: float = 10.0) -> LedgerRow:
        """The one row of ``request_id``, waiting for the running proxy's writer."""
        self.request_ids.append(request_id)
        deadline = time.monotonic() + timeout_s
        while True:
            rows = [r for r in self.rows() if r.request_id == request_id]
            if rows or time.monotonic() > deadline:
                assert len(rows) == 1, f"{len(rows)} ledger rows for {request_id}"
                return rows[0]
            time.sleep(0.1)

    def check_one_row_each(self) -> None:
        """Stop, then assert the ledger holds exactly one row per request looked at."""
        self.stop()
        counts: dict[str, int] = dict.fromkeys(self.request_ids, 0)
        for row in self.rows():
            if row.request_id in counts:
                counts[row.request_id] += 1
        assert counts == dict.fromkeys(self.request_ids, 1), counts

    def metrics(self) -> str:
        response = httpx.get(f"{self.base_url}/metrics", timeout=5.0)
        response.raise_for_status()
        return response.text

    def budgets(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.base_url}/admin/budgets",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=5.0,
        )
        response.raise_for_status()
        budgets: list[dict[str, Any]] = response.json()["budgets"]
        return budgets


Launch = Callable[..., Proxy]


def start_proxy(
    config: Mapping[str, Any], workdir: Path, *, name: str = "proxy", workers: int = 1
) -> Proxy:
    """Write ``config`` as JSON, serve it on a free port and wait for ``/healthz``.

    A port picked free can be taken before the child binds it, so a child
    that dies during start-up is retried once on another port.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    last: StartupError | None = None
    for attempt in range(2):
        port = free_port()
        args = ["-m", "proxy.cli", "serve", "--config", str(path), "--port", str(port)]
        if workers > 1:
            args += ["--workers", str(workers)]
        process = spawn(f"{name}-{attempt}", args, workdir=workdir)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_for(process, lambda url=base_url: healthy(url))
        except StartupError as exc:
            process.stop()
            last = exc
            continue
        return Proxy(process, base_url, config["ledger"]["url"])
    assert last is not None
    raise last


def ledger_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'ledger.db').resolve()}"


def gauge(metrics_text: str, name: str, labels: str) -> float | None:
    """The value of ``name{labels}`` in Prometheus text, or None when absent."""
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", re.MULTILINE)
    match = pattern.search(metrics_text)
    return float(match.group(1)) if match else None


def detail(row: LedgerRow) -> list[dict[str, Any]]:
    """A row's attempts_detail as a list of dicts."""
    parsed: list[dict[str, Any]] = json.loads(row.attempts_detail or "[]")
    return parsed


def by_request_id(rows: Sequence[LedgerRow], ids: Sequence[str]) -> dict[str, list[LedgerRow]]:
    """The rows of each request id in ``ids`` (a list, to catch duplicates)."""
    found: dict[str, list[LedgerRow]] = {i: [] for i in ids}
    for row in rows:
        if row.request_id in found:
            found[row.request_id].append(row)
    return found


def iter_sse_data(lines: Iterator[str]) -> list[str]:
    """The ``data:`` payloads of SSE lines, in order."""
    return [line[len("data:") :].strip() for line in lines if line.startswith("data:")]


TIERS = ("small", "medium", "large")


def least_tier(text: str) -> str:
    """The least tier the proxy's own scorer gives a one-message prompt ``text``.

    Fallback tests lay their tiers out around it, so they test the fallback
    order whatever the scoring weights say about one short prompt.
    """
    from routing.scorer import load_weights, score_request

    weights = load_weights()
    score = score_request({"messages": [{"role": "user", "content": text}]}, weights=weights)
    return weights.thresholds.tier(score.value)


def tier_above(tier: str) -> str:
    return TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]
