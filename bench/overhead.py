"""The overhead scenarios: each measured direct to the fake upstream, through the
pass-through floor and through Spendgate, in the same run.

Load comes from ``wrk`` (``bench.wrk``), except where only a Python client
can measure what is wanted: a stream's time to its first body byte
(``bench.load``). Each target's CPU time is read per thread and process
(``bench.procstat``); for Spendgate also its event-loop lag and, once its
ledger writer has caught up, whether the ledger holds one row per request
it counted (``bench.scrape``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import procstat, scrape
from bench.fleet import (
    BENCH_KEY,
    DEFAULT_REDIS_URL,
    FAST_MODEL,
    SLOW_MODEL,
    Fleet,
    fleet,
    ledger_path,
    redis_reachable,
)
from bench.load import Kind
from bench.processes import CLIENT_CPU, Service, cpu_prefix, run_load
from bench.wrk import run_wrk

CHAT = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much load each scenario gets."""

    requests_c1: int = 3000  # Python-generator scenarios (stream time to first byte)
    duration_s: float = 5.0  # each wrk run
    warmup: int = 300  # Python generator: unrecorded requests first
    warmup_s: float = 1.0  # wrk: an unrecorded run first (0: none)
    delay_ms: float = 50.0
    scaling_rounds: int = 3  # --workers scaling: pairs of runs, the median reported


SMOKE_SIZES = Sizes(requests_c1=30, duration_s=1.0, warmup=10, warmup_s=0.0, scaling_rounds=1)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One measurement: the same load against several targets."""

    name: str
    description: str
    kind: Kind
    concurrency: int
    proxy: str  # which Spendgate process: main, redis, features
    metric: str = "latency_ms"  # or ttfb_ms for streams
    generator: str = "wrk"  # or "python"
    slow: bool = False  # the delayed upstream
    floor: bool = True


def scenarios(sizes: Sizes) -> list[Scenario]:
    """Every scenario of a full run, in order."""
    miss = Kind("miss", FAST_MODEL, cache_off=True)
    stored = Kind("miss-stored", FAST_MODEL)
    hit = Kind("hit", FAST_MODEL, unique=False)
    stream = Kind("stream", FAST_MODEL, stream=True, cache_off=True)
    slow = Kind("slow", SLOW_MODEL, cache_off=True)
    return [
        Scenario("latency_c1", "miss (cache off), concurrency 1", miss, 1, "main"),
        Scenario("throughput_c32", "miss (cache off), concurrency 32", miss, 32, "main"),
        Scenario("throughput_c128", "miss (cache off), concurrency 128", miss, 128, "main"),
        Scenario("stored_miss_c32", "miss, answer stored in the cache, c32", stored, 32, "main"),
        Scenario(
            "stream_ttfb_c1", "streamed miss (cache off), time to first body byte", stream, 1,
            "main", metric="ttfb_ms", generator="python",
        ),
        Scenario("cache_hit_memory_c1", "exact hit, memory backend", hit, 1, "main", floor=False),
        Scenario("cache_hit_redis_c1", "exact hit, Redis backend", hit, 1, "redis", floor=False),
        Scenario(
            "upstream_delay_c32", f"{sizes.delay_ms:g} ms upstream (cache off), concurrency 32",
            slow, 32, "main", slow=True,
        ),
        Scenario(
            "all_features_c1", "keys, budget, downgrade routing, cache; miss", stored, 1,
            "features", floor=False,
        ),
        Scenario(
            "all_features_c32", "keys, budget, downgrade routing, cache; miss", stored, 32,
            "features", floor=False,
        ),
    ]  # fmt: skip


def _targets(scenario: Scenario, running: Fleet) -> list[tuple[str, Service]]:
    """(label, server) for each target of ``scenario``, the direct one first."""
    targets = [("direct", running.slow if scenario.slow else running.fast)]
    floor = running.floors.get("slow" if scenario.slow else "fast")
    if scenario.floor and floor is not None:
        targets.append(("floor", floor))
    targets.append(("spendgate", running.proxies[scenario.proxy]))
    return targets


def overhead(direct: dict[str, Any], proxied: dict[str, Any], metric: str) -> dict[str, Any]:
    """Proxied minus direct (ms) and proxied / direct, at p50, p90 and p99."""
    out: dict[str, Any] = {"metric": metric}
    for q in ("p50", "p90", "p99"):
        base, value = direct.get(metric, {}).get(q), proxied.get(metric, {}).get(q)
        if base is None or value is None:
            continue
        out[f"{q}_ms"] = value - base
        out[f"{q}_ratio"] = value / base if base > 0 else None
    if direct.get("rps"):
        out["rps_ratio"] = proxied["rps"] / direct["rps"]
    return out


def cpu_cost(split: dict[str, float], requests: int) -> dict[str, Any]:
    """CPU per request, in all and by thread, and the requests/s one core could serve."""
    total = split.get("total", 0.0)
    if requests <= 0 or total <= 0:
        return {}
    per_request_us = total / requests * 1e6
    by_thread = {k: v / requests * 1e6 for k, v in sorted(split.items()) if k != "total"}
    return {
        "cpu_us_per_request": per_request_us,
        "cpu_us_by_thread": by_thread,
        "one_core_rps": 1e6 / per_request_us,
    }


def _load(scenario: Scenario, server: Service, sizes: Sizes, *, key: str | None) -> Any:
    """A function that runs the scenario's load once: (summary, requests its CPU covers)."""
    url = server.url(CHAT)

    def wrk(seconds: float) -> dict[str, Any]:
        return run_wrk(
            url, scenario.kind, concurrency=scenario.concurrency, duration_s=seconds,
            workdir=server.stdout_path.parent, cpu_prefix=cpu_prefix(CLIENT_CPU), key=key,
        )  # fmt: skip

    def measured() -> tuple[dict[str, Any], int]:
        if scenario.generator == "wrk":
            summary = wrk(sizes.duration_s)
            return summary, summary["requests"]
        summary = run_load(
            url, [scenario.kind], concurrency=scenario.concurrency, requests=sizes.requests_c1,
            warmup=sizes.warmup, key=key,
        )  # fmt: skip
        return summary, summary["requests"] + sizes.warmup

    if scenario.generator == "wrk" and sizes.warmup_s > 0:
        wrk(sizes.warmup_s)
    return measured


def run_target(scenario: Scenario, label: str, server: Service, sizes: Sizes) -> dict[str, Any]:
    """Measure one target: its load summary, CPU, and for Spendgate lag and ledger rows."""
    proxied = label == "spendgate"
    key = BENCH_KEY if proxied and scenario.proxy == "features" else None
    run = _load(scenario, server, sizes, key=key)
    metrics_before = scrape.scrape(server.url()) if proxied else None
    cpu_before = procstat.thread_times(server.pid)
    summary, covered = run()
    summary.update(
        cpu_cost(procstat.cpu_split(cpu_before, procstat.thread_times(server.pid)), covered)
    )
    if metrics_before is not None:
        summary["loop_lag"] = scrape.lag_summary(metrics_before, scrape.scrape(server.url()))
    return summary


def run_scenario(scenario: Scenario, running: Fleet, sizes: Sizes) -> dict[str, Any]:
    """Measure ``scenario`` against each of its targets."""
    results = {
        label: run_target(scenario, label, server, sizes)
        for label, server in _targets(scenario, running)
    }
    proxy = running.proxies[scenario.proxy]
    entry: dict[str, Any] = {
        "description": scenario.description,
        "concurrency": scenario.concurrency,
        "proxy": scenario.proxy,
        "generator": scenario.generator,
        "results": results,
        "overhead": overhead(results["direct"], results["spendgate"], scenario.metric),
        # Every request the proxy counted so far, against the rows its ledger holds.
        "ledger": scrape.settled_ledger(proxy.url(), ledger_path(running.workdir, scenario.proxy)),
    }
    if "floor" in results:
        entry["floor_overhead"] = overhead(results["direct"], results["floor"], scenario.metric)
    return entry


Progress = Callable[[str], None]


def run_all(
    *,
    sizes: Sizes,
    redis_url: str | None = DEFAULT_REDIS_URL,
    with_floor: bool = True,
    workdir: Path | None = None,
    progress: Progress = lambda line: None,
    during_load: Callable[[Fleet], dict[str, Any]] | None = None,
    only: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Start the fleet, run every scenario (or those named in ``only``), return the results."""
    plan = [s for s in scenarios(sizes) if not only or s.name in only]
    skipped: dict[str, str] = {}
    if redis_url is not None and not redis_reachable(redis_url):
        skipped["cache_hit_redis_c1"] = f"Redis unreachable at {redis_url}"
        redis_url = None
    if redis_url is None:
        skipped.setdefault("cache_hit_redis_c1", "no Redis")
    plan = [s for s in plan if s.name not in skipped]
    with tempfile.TemporaryDirectory(prefix="spendgate-bench-") as tmp:
        root = workdir or Path(tmp)
        with fleet(
            root, delay_ms=sizes.delay_ms, redis_url=redis_url, with_floor=with_floor
        ) as running:
            main_pid = running.proxies["main"].pid
            rss: dict[str, Any] = {"main_before": procstat.tree_rss_mib(main_pid)}
            results: dict[str, Any] = {}
            for scenario in plan:
                progress(f"{scenario.name}: {scenario.description}")
                results[scenario.name] = run_scenario(scenario, running, sizes)
            rss["main_after"] = procstat.tree_rss_mib(main_pid)
            for name, service in running.proxies.items():
                rss[f"{name}_end"] = procstat.tree_rss_mib(service.pid)
            extra = during_load(running) if during_load is not None else {}
    return {"sizes": asdict(sizes), "scenarios": results, "skipped": skipped, "rss": rss, **extra}
