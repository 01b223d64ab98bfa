"""``--workers N`` scaling: requests/s of one worker on one core, and of two on two.

Both runs are alike but for the worker count and the cores they may use: a
fresh fake upstream and ``wrk`` at the same concurrency, free to run on any
core, and a proxy serving misses (cache off, SQLite ledger and access log
on). One worker (with its ledger writer process) is pinned to one core, as
in the other scenarios; two workers (and their writer processes) may use
both, which they share with the upstream and ``wrk`` as they would in
production.

One five-second run of each is a noisy sample: on a shared 2-core host one
worker's requests/s moved by 20 % between back-to-back runs. So the pair is
measured ``rounds`` times, one worker then two, each pair close together in
time, and the ratio reported is the median of the pairs' ratios; every
pair is kept in the results.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procstat
from bench.fleet import FAST_MODEL, proxy_config
from bench.load import Kind
from bench.overhead import CHAT, cpu_cost
from bench.processes import PROXY_CPU, Service, start_proxy, start_upstream, wait_healthy
from bench.wrk import run_wrk

SCALING_CONCURRENCY = 64
WORKER_COUNTS = (1, 2)
ROUNDS = 3


def run_scaling(
    workdir: Path,
    *,
    duration_s: float,
    warmup_s: float,
    concurrency: int = SCALING_CONCURRENCY,
    rounds: int = ROUNDS,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Requests/s, latency and CPU per request with one worker and with two, ``rounds``
    times; the median pair's figures and ratio, and every pair."""
    upstream = start_upstream(workdir, name="upstream-scaling", cpu=None)
    kind = Kind("miss", FAST_MODEL, cache_off=True)
    pairs: list[dict[str, Any]] = []
    try:
        for round_no in range(1, rounds + 1):
            pair: dict[str, Any] = {}
            for workers in WORKER_COUNTS:
                progress(
                    f"scaling: {workers} worker(s), concurrency {concurrency}, "
                    f"round {round_no} of {rounds}"
                )
                pair[f"workers_{workers}"] = _measure(
                    workdir, upstream, kind, workers=workers, concurrency=concurrency,
                    duration_s=duration_s, warmup_s=warmup_s,
                    name=f"workers-{workers}-{round_no}",
                )  # fmt: skip
            one, two = pair["workers_1"]["rps"], pair["workers_2"]["rps"]
            pair["ratio"] = two / one if one > 0 else None
            pairs.append(pair)
    finally:
        upstream.stop()
    return summarise(pairs, concurrency)


def summarise(pairs: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """The median pair (by ratio) in the top-level keys, and every pair under ``rounds``."""
    ratios = [p["ratio"] for p in pairs if p["ratio"] is not None]
    out: dict[str, Any] = {"concurrency": concurrency, "rounds": pairs}
    if not ratios:
        out.update(pairs[0], ratio=None)
        return out
    median = statistics.median_low(ratios)
    out.update(next(p for p in pairs if p["ratio"] == median))
    out["ratio"] = median
    out["ratios"] = ratios
    return out


def _measure(
    workdir: Path,
    upstream: Service,
    kind: Kind,
    *,
    workers: int,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    name: str,
) -> dict[str, Any]:
    config = proxy_config(fast=upstream, slow=upstream, workdir=workdir, name=name)
    cpu = PROXY_CPU if workers == 1 else None
    proxy = wait_healthy(start_proxy(workdir, config, name=name, workers=workers, cpu=cpu))
    try:

        def load(seconds: float, url: str = proxy.url(CHAT)) -> dict[str, Any]:
            return run_wrk(
                url, kind, concurrency=concurrency, duration_s=seconds,
                workdir=workdir, cpu_prefix=[],
            )  # fmt: skip

        if warmup_s > 0:
            load(warmup_s)
        before = procstat.thread_times(proxy.pid)
        summary = load(duration_s)
        after = procstat.thread_times(proxy.pid)
        summary.update(cpu_cost(procstat.cpu_split(before, after), summary["requests"]))
        # Whether the kernel spread the connections: each process's share of the CPU.
        summary["cpu_s_by_process"] = procstat.cpu_by_process(before, after)
        return summary
    finally:
        proxy.stop()
