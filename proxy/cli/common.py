"""What every ``spendgate`` command shares: the config option, loading it, reporting errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from proxy.errors import ConfigError, SpendgateError
from proxy.settings import Settings, load_settings

Command = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # generic in the type stubs only
    Subcommands = argparse._SubParsersAction


def add_config(parser: argparse.ArgumentParser) -> None:
    """The ``--config FILE`` option."""
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
    """Every problem of a config, one a line, on standard error."""
    print(f"config: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def guarded(command: Command) -> Command:
    """Report our errors as one line and exit 1, never as a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except SpendgateError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run
