"""Fixtures for the observability checks: the simulated provider as a real process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_obs.harness import spawn, wait_for


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """``python -m proxy.simulator --port 0``; yields its OpenAI base URL."""
    child = spawn("simulator", ["-m", "proxy.simulator", "--port", "0"], workdir=tmp_path / "sim")
    marker = "simulated provider listening on "

    def listening() -> str | None:
        text = (child.workdir / "simulator.stdout").read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip() + "/v1"
        return None

    try:
        yield wait_for(child, listening)
    finally:
        child.stop()
