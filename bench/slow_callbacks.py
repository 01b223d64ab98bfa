"""Which callbacks hold Spendgate's event loop: asyncio debug mode under load.

    python -m bench.slow_callbacks [--ms 5] [--seconds 10] [--delay-ms 50] [--concurrency 32]

Runs the proxy app in this process, on a uvloop loop in asyncio debug mode
whose ``slow_callback_duration`` is ``--ms``, pinned to the proxy CPU like
``python -m bench`` pins it (its ledger writer process with it), while
``wrk`` drives misses (cache off) through it to a fake upstream that answers
after ``--delay-ms``. Every callback that ran longer than ``--ms`` is
logged by asyncio; the tool groups them by what ran and prints the counts.
Debug mode itself slows the loop down (it tracks where each coroutine was
created), so durations are upper bounds; what matters is which callbacks
appear at all. Access lines go to a file in the run's folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.fleet import SLOW_MODEL, proxy_config
from bench.load import Kind
from bench.overhead import CHAT
from bench.processes import CLIENT_CPU, PROXY_CPU, cpu_prefix, free_port, start_upstream
from bench.wrk import run_wrk

_TOOK = re.compile(r"took ([0-9.]+) seconds")
_TASK = re.compile(r"coro=<([\w.<>]+)\(\) (running|done, defined) at (\S+?):(\d+)>")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+| created at \S+")


def _what(text: str) -> str:
    """A slow callback's description without what changes from one run to the next."""
    task = _TASK.search(text)
    if task is not None:
        where = "/".join(task.group(3).split("/")[-2:])
        if task.group(2) == "running":
            return f"a step of {task.group(1)}() (then waiting at {where}:{task.group(4)})"
        return f"the last step of {task.group(1)}() ({where})"
    return _ADDRESS.sub("", text).strip()[:160]


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.slow: dict[str, list[float]] = defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        took = _TOOK.search(message)
        if not message.startswith("Executing") or took is None:
            return
        self.slow[_what(message[len("Executing ") : took.start()])].append(float(took.group(1)))


async def _drive(app: Any, *, port: int, load: Any) -> dict[str, Any]:
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        summary: dict[str, Any] = await asyncio.to_thread(load, f"http://127.0.0.1:{port}{CHAT}")
    finally:
        server.should_exit = True
        await serving
    return summary


def _serve_debug(app: Any, *, ms: float, load: Any) -> dict[str, Any]:
    """Serve ``app`` on a uvloop loop in debug mode while ``load(url)`` runs."""
    import uvloop

    loop = uvloop.new_event_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = ms / 1000
    try:
        summary: dict[str, Any] = loop.run_until_complete(_drive(app, port=free_port(), load=load))
    finally:
        loop.close()
    return summary


def run(ms: float, seconds: float, delay_ms: float, concurrency: int) -> dict[str, Any]:
    """Serve under load in debug mode; the slow callbacks asyncio reported, grouped."""
    from proxy.ops.access_log import configure_access_log
    from proxy.server.app import create_app
    from proxy.settings import load_settings

    if cpu_prefix(PROXY_CPU):
        os.sched_setaffinity(0, {PROXY_CPU})
    collector = _Collector()
    logging.getLogger("asyncio").addHandler(collector)
    with tempfile.TemporaryDirectory(prefix="spendgate-slowcb-") as tmp:
        workdir = Path(tmp)
        upstream = start_upstream(workdir, name="upstream", delay_ms=delay_ms)
        saved_stdout = os.dup(1)
        try:
            path = workdir / "debug.json"
            config = proxy_config(fast=upstream, slow=upstream, workdir=workdir, name="debug")
            path.write_text(json.dumps(config), encoding="utf-8")
            with (workdir / "access.log").open("wb") as access:
                os.dup2(access.fileno(), 1)  # the writer process inherits it too
            configure_access_log(True)
            sys.setswitchinterval(0.001)  # as spendgate serve does

            def load(url: str) -> dict[str, Any]:
                kind = Kind("slow", SLOW_MODEL, cache_off=True)
                return run_wrk(
                    url, kind, concurrency=concurrency, duration_s=seconds, workdir=workdir,
                    cpu_prefix=cpu_prefix(CLIENT_CPU),
                )  # fmt: skip

            app = create_app(load_settings(str(path)), freeze_startup_objects=True)
            summary = _serve_debug(app, ms=ms, load=load)
        finally:
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
            upstream.stop()
    groups = sorted(collector.slow.items(), key=lambda kv: -len(kv[1]))
    return {
        "threshold_ms": ms,
        "requests": summary["requests"],
        "rps": summary["rps"],
        "slow_callbacks": sum(len(v) for v in collector.slow.values()),
        "by_callback": [
            {"callback": what, "count": len(took), "max_ms": round(max(took) * 1000, 1)}
            for what, took in groups[:15]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: prints the grouped slow callbacks as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.slow_callbacks", description=__doc__)
    parser.add_argument("--ms", type=float, default=5.0, help="slow_callback_duration in ms")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--delay-ms", type=float, default=50.0, help="upstream answer delay")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    result = run(args.ms, args.seconds, args.delay_ms, args.concurrency)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
