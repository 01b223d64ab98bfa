"""The ``spendgate`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from proxy.errors import ConfigError
from proxy.settings import Settings, load_settings

Command = Callable[[argparse.Namespace], int]


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $SPENDGATE_CONFIG, else ./spendgate.yaml, else the environment)",
    )


def load(args: argparse.Namespace) -> Settings:
    """Settings for a subcommand, or exit 1 after printing every problem."""
    try:
        return load_settings(getattr(args, "config", None), list_models=_catalog_models)
    except ConfigError as exc:
        print_problems(exc)
        raise SystemExit(1) from exc


def _catalog_models(provider: str) -> Sequence[tuple[str, str | None]]:
    from proxy.server.defaults import catalog_models

    return catalog_models(provider)


def print_problems(exc: ConfigError) -> None:
    print(f"config: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spendgate", description="OpenAI-compatible proxy that cuts and bills LLM spend"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy")
    _add_config(serve)
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

    from proxy.cli.commands import register_commands

    register_commands(sub, add_config=_add_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
