"""Session fixtures: one simulated provider and one proxy, real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_security.harness import Proxy, main_config, tag
from tests.support.servers import Simulator, start_proxy, start_simulator

SIM_HOLD_S = 5.0


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    simulator = start_simulator(tmp_path_factory.mktemp("simulator"), hold_s=SIM_HOLD_S)
    try:
        yield simulator
    finally:
        simulator.process.stop()


@pytest.fixture
def fresh_sim(sim: Simulator) -> Iterator[Simulator]:
    """The simulator with zeroed counters and no armed faults, before and after."""
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture(scope="session")
def uid() -> str:
    """This run's tag: in model names, tenants and budgets."""
    return tag()


@pytest.fixture(scope="session")
def proxy(sim: Simulator, uid: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    workdir: Path = tmp_path_factory.mktemp("proxy")
    served = start_proxy(main_config(sim, workdir, uid), workdir, kind=Proxy)
    try:
        yield served
    finally:
        served.stop()
