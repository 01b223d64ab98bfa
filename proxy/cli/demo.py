"""``spendgate demo``: its options and entry point live with the demo (``proxy.demo.run``)."""

from __future__ import annotations

from proxy.cli.common import Subcommands


def register(sub: Subcommands) -> None:
    """Add ``demo``."""
    from proxy.demo import run as demo

    parser = sub.add_parser(
        "demo", help="see it work: a simulated provider, the proxy, a replayed workload"
    )
    demo.add_arguments(parser)
    parser.set_defaults(func=demo.run)
