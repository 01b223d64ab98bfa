"""``--workers N`` scaling: requests/s of one worker on one core, and of two on two.

Both runs are alike but for the worker count and the cores they may use: a
fresh fake upstream and ``wrk`` at the same concurrency, free to run on any
core, and a proxy serving misses (cache off, SQLite ledger and access log
on). One worker (with its ledger writer process) is pinned to one core, as
in the other scenarios; two workers (and their writer processes) may use
both, which they share with the upstream and ``wrk`` as they would in
production. The ratio is two workers' requests/s over one worker's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procstat
from bench.fleet import FAST_MODEL, proxy_config
from bench.load import Kind
from bench.overhead import CHAT, cpu_cost
from bench.processes import PROXY_CPU, start_proxy, start_upstream, wait_healthy
from bench.wrk import run_wrk

SCALING_CONCURRENCY = 64
WORKER_COUNTS = (1, 2)


def run_scaling(
    workdir: Path,
    *,
    duration_s: float,
    warmup_s: float,
    concurrency: int = SCALING_CONCURRENCY,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Requests/s, latency and CPU per request with one worker and with two; their ratio."""
    upstream = start_upstream(workdir, name="upstream-scaling", cpu=None)
    kind = Kind("miss", FAST_MODEL, cache_off=True)
    out: dict[str, Any] = {"concurrency": concurrency}
    try:
        for workers in WORKER_COUNTS:
            progress(f"scaling: {workers} worker(s), concurrency {concurrency}")
            name = f"workers-{workers}"
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
                out[f"workers_{workers}"] = summary
            finally:
                proxy.stop()
    finally:
        upstream.stop()
    one, two = out["workers_1"]["rps"], out["workers_2"]["rps"]
    out["ratio"] = two / one if one > 0 else None
    return out
