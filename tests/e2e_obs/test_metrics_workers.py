"""``/metrics`` under ``serve --workers 2``: every worker's counts, aggregated exactly.

Each worker writes its own prometheus multiprocess files; ``/metrics``, on
whichever worker answers, must add them all up. The per-worker files are read
too, to prove that both workers served requests (otherwise a single worker
would pass the test without any aggregation happening).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e_obs.harness import SIM_KEY, env_with_tmpdir
from tests.support.processes import (
    Process,
    StartupError,
    free_port,
    healthy,
    python_module,
    spawn,
    wait_until,
)

pytestmark = pytest.mark.e2e

BATCH = 16
MAX_REQUESTS = 256
SCRAPES = 6
SETTLE_S = 10.0


def write_config(workdir: Path, sim_url: str) -> Path:
    config = {
        "providers": {"sim": {"type": "openai", "base_url": sim_url, "api_key": SIM_KEY}},
        "models": [{"name": "gpt-4o-mini", "provider": "sim", "tier": "small"}],
        "routing": {"mode": "off"},
        "cache": {"backend": "memory"},
        "ledger": {"url": f"sqlite:///{workdir / 'ledger.db'}"},
    }
    path = workdir / "spendgate.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def start_proxy(workdir: Path, config: Path) -> tuple[Process, str]:
    """``serve --workers 2`` on a free port (retried: a free port can be taken first)."""
    for attempt in range(3):
        port = free_port()
        args = ["serve", "--config", str(config), "--port", str(port)]
        # A folder per attempt: each holds one run's multiprocess metrics folder.
        attempt_dir = workdir / f"attempt{attempt}"
        argv = python_module("proxy.cli", *args, "--workers", "2")
        child = spawn("proxy", argv, workdir=attempt_dir, env=env_with_tmpdir(attempt_dir))
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(child, functools.partial(healthy, base))
        except StartupError:
            child.stop()
            if attempt == 2:
                raise
            continue
        return child, base
    raise AssertionError("unreachable")


def ask(base: str) -> int:
    """One request on a connection of its own, so the kernel may hand it to either worker."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"ping {uuid.uuid4().hex}"}],
    }
    with httpx.Client(timeout=30.0) as client:
        return client.post(f"{base}/v1/chat/completions", json=body).status_code


def requests_by_worker(workdir: Path) -> Counter[str]:
    """``spendgate_requests_total`` per worker, from each worker's own multiprocess file.

    ``serve --workers N`` makes its metrics folder with ``mkdtemp`` in the
    child's ``TMPDIR``, which the harness points at ``workdir/tmp``.
    """
    folders = list((workdir / "tmp").glob("spendgate-metrics-*"))
    assert len(folders) == 1, folders
    counts: Counter[str] = Counter()
    for path in folders[0].glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            if json.loads(key)[1] == "spendgate_requests_total":
                counts[path.stem] += int(value)
    return counts


def scrape(base: str) -> dict[str, float]:
    """Sample name and labels -> value, from one ``GET /metrics``."""
    text = httpx.get(f"{base}/metrics", timeout=5.0).text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    return samples


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    out = 0.0
    for key, value in samples.items():
        sample, _, raw = key.partition("{")
        found = json.loads("{" + raw)
        if sample == name and all(found.get(k) == v for k, v in labels.items()):
            out += value
    return out


def test_two_workers_metrics_add_up_exactly(tmp_path: Path, simulator: str) -> None:
    config = write_config(tmp_path, simulator)
    proxy, base = start_proxy(tmp_path, config)
    try:
        sent = 0
        with ThreadPoolExecutor(BATCH) as pool:
            while sent < MAX_REQUESTS:
                statuses = list(pool.map(ask, [base] * BATCH))
                assert statuses == [200] * BATCH
                sent += BATCH
                if len(requests_by_worker(proxy.workdir)) == 2 and sent >= 2 * BATCH:
                    break
        workers = requests_by_worker(proxy.workdir)
        assert len(workers) == 2 and min(workers.values()) > 0, workers
        assert sum(workers.values()) == sent

        deadline = time.monotonic() + SETTLE_S
        while total(scrape(base), "spendgate_requests_total") != sent:
            assert time.monotonic() < deadline, "the aggregate never reached the count sent"
            time.sleep(0.1)
        for _ in range(SCRAPES):  # several scrapes, answered by either worker
            samples = scrape(base)
            assert total(samples, "spendgate_requests_total") == sent
            assert total(samples, "spendgate_requests_total", status="200") == sent
            for histogram in ("spendgate_upstream_seconds", "spendgate_proxy_seconds"):
                assert total(samples, f"{histogram}_count") == sent, histogram
                assert total(samples, f"{histogram}_bucket", le="+Inf") == sent, histogram
            assert total(samples, "spendgate_cache_lookups_total", tier="exact") == sent
            assert total(samples, "spendgate_cache_hits_total") == 0
            cost = total(samples, "spendgate_cost_micro_usd_total")
        assert cost == ledger_cost(tmp_path / "ledger.db", rows=sent)
        assert cost > 0
    finally:
        proxy.stop()
    assert proxy.popen.returncode == 0, proxy.describe()


def ledger_cost(path: Path, *, rows: int) -> int:
    """The ledger's total cost once it holds ``rows`` rows (the writers batch them)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        with contextlib.closing(sqlite3.connect(path)) as db:
            count, cost = db.execute("SELECT COUNT(*), SUM(cost) FROM ledger_rows").fetchone()
        if count == rows or time.monotonic() > deadline:
            assert count == rows
            return int(cost)
        time.sleep(0.1)
