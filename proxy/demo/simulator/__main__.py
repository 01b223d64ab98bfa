"""``python -m proxy.demo.simulator``: serve the simulated provider.

Prints one line, ``simulated provider listening on http://HOST:PORT``, once
it accepts connections, so a parent process can wait for it (``--port 0``
picks a free port and that line tells which).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from proxy.demo.simulator.app import build_app
from proxy.demo.simulator.runner import bind_socket, make_server
from proxy.demo.simulator.state import SimConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: where to listen and how the model behaves."""
    parser = argparse.ArgumentParser(
        prog="python -m proxy.demo.simulator",
        description="A simulated OpenAI and Anthropic provider for tests, demos and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=int, default=0, help="latency added to every answer")
    parser.add_argument(
        "--timeout-s", type=float, default=30.0, help="how long the 'timeout' fault holds a request"
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="accept requests without provider key headers"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.delay_ms < 0 or args.port < 0:
        parser.error("--port and --delay-ms must not be negative")
    return args


async def serve(args: argparse.Namespace) -> None:
    """Serve until interrupted."""
    config = SimConfig(
        delay_ms=args.delay_ms, timeout_s=args.timeout_s, require_auth=not args.no_auth
    )
    app = build_app(config)
    sock = bind_socket(args.host, args.port)
    server = make_server(app, log_level=args.log_level)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        host, port = sock.getsockname()[:2]
        print(f"simulated provider listening on http://{host}:{port}", flush=True)
    try:
        await task
    finally:
        app.state.stopping.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m proxy.demo.simulator``."""
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
