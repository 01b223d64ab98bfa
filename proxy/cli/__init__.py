"""The ``spendgate`` command line: one module per command group.

    serve, check-config   proxy.cli.serve
    keys create           proxy.cli.keys
    pricing               proxy.cli.pricing
    export, audit         proxy.cli.ledger
    route                 proxy.cli.route
    demo                  proxy.cli.demo

Each group adds its own parser; what a command needs beyond argparse is
imported when it runs, so building the parser stays cheap for every command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from proxy.cli import demo, keys, ledger, pricing, route, serve
from proxy.cli.common import Command

GROUPS = (serve, keys, pricing, ledger, route, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``spendgate`` parser with every command group."""
    parser = argparse.ArgumentParser(
        prog="spendgate", description="OpenAI-compatible proxy that cuts and bills LLM spend"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``spendgate`` command; its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
