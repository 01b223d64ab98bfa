"""``spendgate serve`` and ``spendgate check-config``."""

from __future__ import annotations

import argparse

from proxy.cli.common import Subcommands, add_config, load, print_problems
from proxy.errors import ConfigError
from proxy.settings import load_settings


def cmd_serve(args: argparse.Namespace) -> int:
    from proxy.server.server import serve

    settings = load(args)
    return serve(
        settings, host=args.host, port=args.port, workers=args.workers, insecure=args.insecure
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    from proxy.server.defaults import config_warnings

    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        print_problems(exc)
        return 1
    for warning in config_warnings(settings):
        print(f"warning: {warning}")
    print(
        f"{args.file}: OK ({len(settings.config.models)} models, {len(settings.config.providers)} providers)"
    )
    return 0


def register(sub: Subcommands) -> None:
    """Add ``serve`` and ``check-config``."""
    serve = sub.add_parser("serve", help="run the proxy")
    add_config(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind with no proxy keys"
    )
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)
