"""``spendgate demo``: the whole product on a simulated provider, in one process.

One event loop runs the simulated provider, the proxy (a real uvicorn server
on 127.0.0.1) and a client replaying a multi-agent workload through it over
HTTP. The report is read back from the SQLite ledger the proxy wrote, after
its writer has stored every row. No provider key and no network are needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from proxy.config import Config
from proxy.settings import Settings, parse_config

if TYPE_CHECKING:
    import uvicorn

    from proxy.demo.simulator.runner import SimulatorHandle
    from proxy.demo.workload import ReplayResult

# The server, simulator, ledger and HTTP client are imported where they are
# used: the CLI imports this module to build its parser, for every command.

DEFAULT_PORT = 8080
PORTS_TO_TRY = 20
DEFAULT_REQUESTS = 300
CONCURRENCY = 8
SIM_DELAY_MS = 25
SIM_KEY = "sk-simulated-provider"
TENANT = "acme"
SMALL_MODEL, MEDIUM_MODEL, BASELINE_MODEL = "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"
TIERS = ((SMALL_MODEL, "small"), (MEDIUM_MODEL, "medium"), (BASELINE_MODEL, "large"))
LEDGER_WAIT_S = 15.0
STARTUP_TIMEOUT_S = 10.0
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument("--no-serve", action="store_true", help="exit after the report")
    parser.add_argument(
        "--requests", type=int, default=DEFAULT_REQUESTS, metavar="N", help="requests to replay"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="P",
        help=f"proxy port (default: {DEFAULT_PORT}, else the first free one after it)",
    )
    parser.add_argument(
        "--ledger", metavar="PATH", help="SQLite ledger file (default: one in a temporary folder)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success."""
    if args.requests < 1:
        print("--requests must be at least 1", file=sys.stderr)
        return 2
    if args.ledger and not Path(args.ledger).resolve().parent.is_dir():
        print(f"--ledger: no folder {Path(args.ledger).resolve().parent}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_demo(args))
    except OSError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


def demo_config(
    *, sim_url: str, ledger_url: str, admin_key: str, proxy_key: str, workdir: Path
) -> Config:
    """Three tiers at catalog prices, downgrade routing, a memory cache, a SQLite ledger."""
    data: dict[str, Any] = {
        "providers": {"simulated": {"type": "openai", "base_url": sim_url, "api_key": SIM_KEY}},
        "models": [{"name": name, "provider": "simulated", "tier": tier} for name, tier in TIERS],
        "routing": {
            "mode": "downgrade",
            "baseline_model": BASELINE_MODEL,
            "max_attempts": 4,
            # Short back-off so the injected failures do not stretch the demo.
            "retry_base_s": 0.05,
            "retry_cap_s": 0.2,
            # Above the injected failures: a breaker opening would send the rest
            # of this short replay to the large tier.
            "breaker_failures": 20,
        },
        "cache": {"enabled": True, "backend": "memory", "semantic": {"enabled": False}},
        "ledger": {"url": ledger_url, "fee_rate": "0.10"},
        # The progress bar and the report are the demo's output, not one log line per request.
        "server": {"access_log": False},
        "auth": {
            "admin_key": admin_key,
            "keys": [{"key": proxy_key, "tenant": TENANT, "name": "demo"}],
        },
        # A path that does not exist: the demo prices from the packaged catalog only.
        "pricing": {"overrides_file": str(workdir / "no-price-overrides.json")},
    }
    return parse_config(data, known_provider_types=("openai", "anthropic"))


def proxy_socket(port: int | None) -> socket.socket:
    """A socket on 127.0.0.1: ``port`` if given, else 8080 or the next free one."""
    from proxy.demo.simulator.runner import bind_socket

    if port is not None:
        return bind_socket("127.0.0.1", port)
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + PORTS_TO_TRY):
        try:
            return bind_socket("127.0.0.1", candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    return bind_socket("127.0.0.1", 0)


@contextlib.asynccontextmanager
async def serve_proxy(settings: Settings, sock: socket.socket) -> AsyncIterator[uvicorn.Server]:
    """The proxy on ``sock`` in this event loop until the block exits."""
    import uvicorn

    from proxy.server.app import create_app

    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = uvicorn.Server(config)
    # uvicorn would take SIGINT over while serving; the demo handles Ctrl-C itself.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the proxy stopped during start-up")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the proxy did not start in time")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


def arm_failures(sim: SimulatorHandle) -> None:
    """Upstream trouble for the proxy to absorb: retries on 500s and 429s, fallbacks from medium."""
    sim.arm("500", count=1, model=SMALL_MODEL)
    sim.arm("500", count=6, model=MEDIUM_MODEL)
    sim.arm("429", count=3, model=BASELINE_MODEL)


@dataclass(frozen=True, slots=True)
class DemoKeys:
    """Fresh keys for each demo: the dashboard's admin key and the clients' proxy key."""

    admin: str
    proxy: str


async def _demo(args: argparse.Namespace) -> int:
    from proxy.demo.simulator.runner import run_simulator

    if args.ledger:
        ledger_path = Path(args.ledger).resolve()
    else:  # kept after the demo, for `spendgate audit` or `export` on its rows
        ledger_path = Path(tempfile.mkdtemp(prefix="spendgate-demo-")) / "ledger.db"
    keys = DemoKeys(
        admin="sg-admin-" + secrets.token_urlsafe(12), proxy="sg-demo-" + secrets.token_urlsafe(12)
    )
    err = sys.stderr
    async with run_simulator(delay_ms=SIM_DELAY_MS, require_auth=True) as sim:
        print(f"simulated provider  {sim.openai_base_url}  (no real model is called)", file=err)
        config = demo_config(
            sim_url=sim.openai_base_url, ledger_url=f"sqlite:///{ledger_path}",
            admin_key=keys.admin, proxy_key=keys.proxy, workdir=ledger_path.parent,
        )  # fmt: skip
        sock = proxy_socket(args.port)
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with (
            serve_proxy(Settings(config, source="spendgate demo"), sock),
            _stop_on_signals() as stop,
        ):
            print(f"proxy               {base_url}/v1", file=err)
            print(f"ledger              {ledger_path}", file=err)
            job = _replay_and_report(args, sim, base_url, keys.proxy, config)
            code = await _unless_stopped(job, stop)
            if code is None:
                print("\ninterrupted", file=err)
                return 130
            if code == 0 and not args.no_serve:
                _print_serving(base_url, keys)
                await stop.wait()
                print("stopping", file=err)
    return code


@contextlib.asynccontextmanager
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by Ctrl-C or SIGTERM while the block runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _unless_stopped(job: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``job``'s result, or None if ``stop`` is set first (the job is then cancelled)."""
    task = asyncio.ensure_future(job)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def _replay_and_report(
    args: argparse.Namespace,
    sim: SimulatorHandle,
    base_url: str,
    proxy_key: str,
    config: Config,
) -> int:
    from proxy.demo.workload import Models, Progress, load_prompts, plan_workload, replay

    models = Models(requested=BASELINE_MODEL, pinned=SMALL_MODEL)
    calls = plan_workload(load_prompts(), total=args.requests, models=models)
    arm_failures(sim)
    started = datetime.now(UTC)
    workflows = len({c.workflow for c in calls})
    print(
        f"replaying {len(calls)} requests from {workflows} workflows, {CONCURRENCY} at a time",
        file=sys.stderr,
    )
    progress = Progress(total=len(calls), out=sys.stderr)
    result = await replay(
        calls, base_url=base_url, api_key=proxy_key, concurrency=CONCURRENCY, progress=progress
    )
    return await asyncio.to_thread(_report, result, config, started)


def _report(result: ReplayResult, config: Config, started: datetime) -> int:
    from pricing.ledger import open_ledger
    from proxy.demo.report import build_report, format_report, wait_for_rows

    ledger_url = config.ledger.url
    # The window starts when the replay did: an existing --ledger file may hold older rows.
    end = datetime.now(UTC) + timedelta(minutes=1)
    store = open_ledger(ledger_url)
    try:
        stored = wait_for_rows(
            store, start=started, end=end, expected=result.sent, timeout_s=LEDGER_WAIT_S
        )
        if stored < result.sent:
            print(f"the ledger holds {stored} of {result.sent} rows", file=sys.stderr)
            return 1
        tiers = {m.name: m.tier or "untiered" for m in config.models}
        report = build_report(
            store, start=started, end=end, fee_rate=config.ledger.fee_rate, tiers=tiers
        )
    finally:
        store.close()
    print(f"replayed {result.sent} requests in {result.seconds:.1f} s", file=sys.stderr)
    print()
    print(format_report(report, tier_order=("small", "medium", "large")))
    print(f"\nledger: {ledger_url.removeprefix('sqlite:///')}", flush=True)
    return 0


def _print_serving(base_url: str, keys: DemoKeys) -> None:
    print(
        f"\nThe proxy keeps running on {base_url}/v1 (Ctrl-C to stop).\n"
        f"  dashboard   {base_url}/dashboard\n"
        f"  admin key   {keys.admin}\n"
        f"  metrics     {base_url}/metrics\n"
        f"  try it      OPENAI_BASE_URL={base_url}/v1 OPENAI_API_KEY={keys.proxy}",
        flush=True,
    )
