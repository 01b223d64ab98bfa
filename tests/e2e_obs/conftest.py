"""Fixtures for the observability checks: the simulated provider as a real process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_obs.harness import env_with_tmpdir
from tests.support.servers import start_simulator


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """``python -m proxy.demo.simulator --port 0``; yields its OpenAI base URL."""
    workdir = tmp_path / "sim"
    sim = start_simulator(workdir, env=env_with_tmpdir(workdir))
    try:
        yield sim.openai_base_url
    finally:
        sim.process.stop()
