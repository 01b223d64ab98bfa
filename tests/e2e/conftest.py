"""Session fixtures: one simulated provider and one proxy, real processes."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.configs import PROXY_KEY, PROXY_TENANT, main_config, simulator_config
from tests.e2e.harness import SIM_HOLD_S, SIM_KEY, Proxy
from tests.support.servers import ProxyLaunch, Simulator, start_simulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    simulator = start_simulator(tmp_path_factory.mktemp("simulator"), hold_s=SIM_HOLD_S)
    try:
        yield simulator
    finally:
        simulator.process.stop()


@pytest.fixture(scope="session")
def proxies(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proxy]]:
    """The main proxy and one that demands proxy keys, started side by side."""
    main_dir = tmp_path_factory.mktemp("proxy")
    keyed_dir = tmp_path_factory.mktemp("keyed-proxy")
    keyed_config = simulator_config(
        sim, keyed_dir, auth={"keys": [{"key": PROXY_KEY, "tenant": PROXY_TENANT}]}
    )
    launches = [
        ProxyLaunch(main_config(sim, main_dir), main_dir, kind=Proxy, name="proxy"),
        ProxyLaunch(keyed_config, keyed_dir, kind=Proxy, name="keyed-proxy"),
    ]
    started: dict[str, Proxy] = {}
    try:
        for launch in launches:
            started[launch.name] = launch.wait()
        yield started
    finally:
        for launch in launches:
            launch.stop()  # the child it started last, whether or not it came up


@pytest.fixture(scope="session")
def proxy(proxies: dict[str, Proxy]) -> Proxy:
    return proxies["proxy"]


@pytest.fixture(scope="session")
def keyed_proxy(proxies: dict[str, Proxy]) -> Proxy:
    """A proxy configured with ``auth.keys``: only ``PROXY_KEY`` gets in."""
    return proxies["keyed-proxy"]


@pytest.fixture
def client(proxy: Proxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=proxy.openai_base_url, api_key="any", max_retries=0) as c:
        yield c


@pytest.fixture
def sim_client(sim: Simulator) -> Iterator[openai.OpenAI]:
    """The openai SDK pointed straight at the simulator, for reference answers."""
    with openai.OpenAI(base_url=sim.openai_base_url, api_key=SIM_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def fresh_sim(sim: Simulator) -> Iterator[Simulator]:
    """The simulator with zeroed counters and no armed faults, before and after."""
    sim.reset()
    yield sim
    sim.reset()
