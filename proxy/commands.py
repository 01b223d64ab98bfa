"""Subcommands beyond ``serve`` and ``check-config``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

AddConfig = Callable[[argparse.ArgumentParser], None]


def register_commands(sub: Any, *, add_config: AddConfig) -> None:
    return None
