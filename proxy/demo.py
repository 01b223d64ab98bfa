"""``spendgate demo``: the whole product on a simulated provider, in one process."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-serve", action="store_true", help="exit after the report")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
