"""The soak: steady mixed load with upstream faults, then the books are checked.

    python -m bench --soak --minutes 10

The load mixes exact-cache hits, misses, streamed misses, transient upstream
faults (the fake upstream fails the first attempt of a share of bodies; the
proxy's retry must recover every one) and a model whose upstream always
fails (its errors are the only explained ones). Afterwards the proxy gets
SIGTERM, and the run passes when:

* no unexplained error: every request but those to the failing model got a
  200, and those got a 5xx, with nothing lost to the transport;
* the SQLite ledger holds exactly one row per request sent, although the
  ledger writer process is killed (SIGKILL) in the middle of every other
  load segment during the first half of the run;
* RSS (the proxy's and its ledger writer process's) is stable: growth over
  the second half of the run stays under ``MAX_RSS_GROWTH_PCT`` (the first
  half fills the bounded cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fleet import FAST_MODEL
from bench.load import Kind
from bench.overhead import CHAT
from bench.processes import BenchError, run_load, start_proxy, start_upstream, wait_healthy
from bench.procstat import descendants, role_of, tree_rss_mib

FAILING_MODEL = "gpt-4.1"
FAULT_RATE = 0.02
SEGMENT_S = 30.0
MAX_RSS_GROWTH_PCT = 10.0
SOAK_CACHE_BYTES = 16 * 1024 * 1024
KINDS = (
    Kind("hit", FAST_MODEL, unique=False, weight=3),
    Kind("miss", FAST_MODEL, weight=5),
    Kind("stream", FAST_MODEL, stream=True, weight=1),
    Kind("failing", FAILING_MODEL, weight=1),
)

Progress = Callable[[str], None]


def soak_config(upstream_url: str, workdir: Path) -> dict[str, Any]:
    """Routing off, quick retries, breakers out of the way, a small memory cache."""
    return {
        "providers": {
            "bench": {"type": "openai", "base_url": upstream_url + "/v1", "api_key": "bench"},
            "failing": {"type": "openai", "base_url": upstream_url + "/fail/v1", "api_key": "x"},
        },
        "models": [
            {"name": FAST_MODEL, "provider": "bench", "tier": "small"},
            {"name": FAILING_MODEL, "provider": "failing", "tier": "large"},
        ],
        "routing": {
            "mode": "off",
            "max_attempts": 3,
            "retry_base_s": 0.001,
            "retry_cap_s": 0.01,
            "breaker_failures": 1_000_000,
        },
        "cache": {"backend": "memory", "max_bytes": SOAK_CACHE_BYTES},
        "ledger": {"url": f"sqlite:///{workdir / 'soak-ledger.db'}"},
    }


def _merge(total: dict[str, dict[str, int]], segment: dict[str, Any]) -> None:
    for name, summary in segment["kinds"].items():
        counts = total.setdefault(name, {"requests": 0, "transport_errors": 0})
        counts["requests"] += summary["requests"]
        counts["transport_errors"] += summary["transport_errors"]
        for status, n in summary["statuses"].items():
            counts[status] = counts.get(status, 0) + n


def unexplained_errors(by_kind: dict[str, dict[str, int]]) -> int:
    """Answers the mix does not account for, and requests lost in transport."""
    bad = 0
    for name, counts in by_kind.items():
        bad += counts["transport_errors"]
        for status, n in counts.items():
            if not status.isdigit():
                continue
            expected = status.startswith("5") if name == "failing" else status == "200"
            bad += 0 if expected else n
    return bad


def ledger_counts(db: Path) -> dict[str, Any]:
    """Rows in the ledger, in all and by HTTP status."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM ledger_rows").fetchone()[0]
        by_status = dict(
            conn.execute("SELECT http_status, COUNT(*) FROM ledger_rows GROUP BY http_status")
        )
    return {"rows": rows, "by_status": {str(k): v for k, v in by_status.items()}}


def rss_growth_pct(samples: list[tuple[float, float]]) -> float | None:
    """RSS growth over the second half of the run, in percent of the mid-run value."""
    if len(samples) < 2:
        return None
    mid = samples[len(samples) // 2 - 1 if len(samples) > 2 else 0][1]
    return 100 * (samples[-1][1] - mid) / mid if mid else None


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=5.0) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def run_soak(*, minutes: float, concurrency: int, progress: Progress) -> dict[str, Any]:
    """Run the soak and return its results document with a verdict."""
    with tempfile.TemporaryDirectory(prefix="spendgate-soak-") as tmp:
        workdir = Path(tmp)
        upstream = start_upstream(workdir, name="upstream", fail_rate=FAULT_RATE)
        proxy = None
        try:
            config = soak_config(upstream.url(), workdir)
            proxy = wait_healthy(start_proxy(workdir, config, name="proxy"))
            by_kind, rss, kills = _drive(proxy.url(CHAT), proxy.pid, minutes, concurrency, progress)
            exit_code = proxy.stop()
            upstream_stats = _stats(upstream.url())
            ledger = ledger_counts(workdir / "soak-ledger.db")
        finally:
            if proxy is not None:
                proxy.stop()
            upstream.stop()
    doc = _verdict(by_kind, rss, ledger, upstream_stats, exit_code, minutes)
    doc["writer_kills"] = kills
    doc["verdict"]["lines"].insert(1, f"ledger writer process killed {kills} times under load")
    return doc


def _kill_writer(pid: int, kills: list[int]) -> None:
    """SIGKILL the proxy's ledger writer process (it is restarted, its batch sent again)."""
    for child in descendants(pid):
        if role_of(child, pid) == "ledger writer process":
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
                kills.append(child)


def _drive(
    url: str, pid: int, minutes: float, concurrency: int, progress: Progress
) -> tuple[dict[str, dict[str, int]], list[tuple[float, float]], int]:
    by_kind: dict[str, dict[str, int]] = {}
    rss: list[tuple[float, float]] = []
    kills: list[int] = []
    started = time.monotonic()
    end = started + minutes * 60
    segments = 0
    while (left := end - time.monotonic()) > 0.5:
        seconds = min(SEGMENT_S, left)
        killer = None
        if segments % 2 == 1 and time.monotonic() - started < minutes * 30:
            killer = threading.Timer(seconds / 2, _kill_writer, (pid, kills))
            killer.start()
        segment = run_load(url, KINDS, concurrency=concurrency, duration_s=seconds)
        if killer is not None:
            killer.join()
        segments += 1
        _merge(by_kind, segment)
        tree = tree_rss_mib(pid)
        if len(tree) < 2:  # no process left but the total
            raise BenchError("the proxy process is gone")
        value = tree["total"]
        rss.append((round(time.monotonic() - started, 1), value))
        progress(f"soak {rss[-1][0]:.0f} s: {segment['rps']:.0f} req/s, RSS {value:.1f} MiB")
    return by_kind, rss, len(kills)


def _verdict(
    by_kind: dict[str, dict[str, int]],
    rss: list[tuple[float, float]],
    ledger: dict[str, Any],
    upstream_stats: dict[str, Any],
    exit_code: int | None,
    minutes: float,
) -> dict[str, Any]:
    sent = sum(c["requests"] + c["transport_errors"] for c in by_kind.values())
    unexplained = unexplained_errors(by_kind)
    growth = rss_growth_pct(rss)
    checks = {
        "no unexplained errors": unexplained == 0,
        "one ledger row per request": ledger["rows"] == sent,
        "RSS stable": growth is not None and growth < MAX_RSS_GROWTH_PCT,
    }
    lines = [
        f"soak: {minutes:g} min, {sent} requests, by kind: {json.dumps(by_kind)}",
        f"unexplained errors: {unexplained}",
        f"ledger rows: {ledger['rows']} (requests sent: {sent}); by status {ledger['by_status']}",
        f"upstream: {json.dumps(upstream_stats)}",
        f"RSS MiB first/mid/last: {_rss_points(rss)}; second-half growth "
        + (f"{growth:.1f}%" if growth is not None else "n/a"),
        # uvicorn re-raises the signal once its graceful shutdown is done: -15 is normal.
        f"proxy exit code after SIGTERM: {exit_code}",
        *(f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()),
    ]
    return {
        "by_kind": by_kind,
        "requests": sent,
        "unexplained_errors": unexplained,
        "ledger": ledger,
        "upstream": upstream_stats,
        "rss_mib": rss,
        "rss_growth_second_half_pct": growth,
        "proxy_exit_code": exit_code,
        "verdict": {"ok": all(checks.values()), "checks": checks, "lines": lines},
    }


def _rss_points(rss: list[tuple[float, float]]) -> str:
    if not rss:
        return "n/a"
    return f"{rss[0][1]:.1f} / {rss[len(rss) // 2][1]:.1f} / {rss[-1][1]:.1f}"
