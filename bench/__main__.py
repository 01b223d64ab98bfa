"""``python -m bench``: Spendgate's overhead over a direct call, in one command.

    python -m bench                    # every scenario, a few minutes
    python -m bench --smoke            # a tiny version, no targets checked
    python -m bench --profile 10       # also sample the proxy with py-spy for 10 s
    python -m bench --soak --minutes 10

Everything runs on loopback against a fake upstream (``bench.upstream``),
driven by ``wrk`` (and a Python client for streams' time to first byte).
After the overhead scenarios, ``--workers`` scaling is measured (one worker,
then two). The results go to ``bench/results/latest.json`` (or ``--output``)
and the tables to stdout. Targets are reported, not enforced: the exit code
is 0 whenever every scenario ran, so a slow machine does not fail a build.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import wrk
from bench.fleet import DEFAULT_REDIS_URL, FAST_MODEL, SLOW_MODEL, Fleet
from bench.hotpath import profile_under_load
from bench.load import Kind
from bench.overhead import CHAT, SMOKE_SIZES, Sizes, run_all
from bench.processes import BenchError, cpu_prefix
from bench.report import LATEST, RESULTS_DIR, check_targets, render, write_json
from bench.scaling import run_scaling


def _environment() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pinned": bool(cpu_prefix(0)),
        "commit": commit or None,
        # Other work on the machine skews every number: keep the load with them.
        "load_average": list(os.getloadavg()),
    }


def _progress(line: str) -> None:
    print(f"-- {line}", file=sys.stderr, flush=True)


def _profiler(seconds: float, output: Path) -> Any:
    def during_load(running: Fleet) -> dict[str, Any]:
        main = running.proxies["main"]
        profiles = {}
        for name, kind, flags in (
            ("cpu", Kind("miss", FAST_MODEL, cache_off=True), []),
            ("gil", Kind("slow", SLOW_MODEL, cache_off=True), ["--gil", "--idle"]),
        ):
            _progress(f"profiling the main proxy ({name}) for {seconds:g} s at concurrency 32")
            profiles[name] = profile_under_load(
                pid=main.pid, url=main.url(CHAT), kind=kind, seconds=seconds,
                out=output.with_name(f"{output.stem}-profile-{name}.txt"), flags=flags,
            )  # fmt: skip
        return {"profile": profiles}

    return during_load


def run_overhead(args: argparse.Namespace) -> int:
    if not wrk.available():
        print("benchmark needs wrk (Debian package 'wrk')", file=sys.stderr)
        return 1
    sizes = SMOKE_SIZES if args.smoke else Sizes()
    if args.requests:
        sizes = replace(sizes, requests_c1=args.requests)
    if args.duration:
        sizes = replace(sizes, duration_s=args.duration)
    output = Path(args.output)
    try:
        doc = run_all(
            sizes=sizes,
            redis_url=None if args.no_redis else args.redis_url,
            with_floor=not args.no_floor,
            progress=_progress,
            during_load=_profiler(args.profile, output) if args.profile else None,
            only=frozenset(filter(None, (args.only or "").split(","))),
        )
        if not args.no_scaling:
            with tempfile.TemporaryDirectory(prefix="spendgate-scaling-") as tmp:
                doc["scaling"] = run_scaling(
                    Path(tmp), duration_s=sizes.duration_s, warmup_s=sizes.warmup_s,
                    rounds=sizes.scaling_rounds, progress=_progress,
                )  # fmt: skip
    except (BenchError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    doc = {"mode": "smoke" if args.smoke else "full", "environment": _environment(), **doc}
    if not args.smoke:
        doc["targets"] = check_targets(doc)
    print(render(doc))
    print(f"\nresults: {write_json(doc, output)}")
    return 0


def run_soak(args: argparse.Namespace) -> int:
    from bench.soak import run_soak as soak

    output = Path(args.output)
    if output == LATEST:
        output = RESULTS_DIR / "soak.json"
    try:
        doc = soak(minutes=args.minutes, concurrency=args.concurrency, progress=_progress)
    except BenchError as exc:
        print(f"soak failed: {exc}", file=sys.stderr)
        return 1
    doc = {"mode": "soak", "environment": _environment(), **doc}
    write_json(doc, output)
    for line in doc["verdict"]["lines"]:
        print(line)
    print(f"\nresults: {output}")
    return 0 if doc["verdict"]["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run, no targets")
    parser.add_argument("--soak", action="store_true", help="steady mixed load with faults")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--concurrency", type=int, default=32, help="soak concurrency")
    parser.add_argument("--requests", type=int, help="requests per concurrency-1 scenario")
    parser.add_argument("--duration", type=float, help="seconds per throughput scenario")
    parser.add_argument("--profile", type=float, metavar="SECONDS", help="py-spy the proxy")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis scenario")
    parser.add_argument("--no-floor", action="store_true", help="skip the pass-through floor")
    parser.add_argument("--no-scaling", action="store_true", help="skip the --workers scaling")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated scenario names to run")
    parser.add_argument("--output", default=str(LATEST), help="result JSON path")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_soak(args) if args.soak else run_overhead(args)


if __name__ == "__main__":
    raise SystemExit(main())
