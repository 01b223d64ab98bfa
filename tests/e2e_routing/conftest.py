"""Fixtures: two simulated providers for the session, proxies per test, Redis when needed."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e_routing.doubles import StubUpstream, start_stub_upstream
from tests.e2e_routing.harness import SIM_HOLD_S, Launch, Proxy
from tests.support.servers import Simulator, start_proxy, start_simulator

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, Simulator]]:
    """Two simulator processes: providers ``p1`` and ``p2`` in every config here."""
    workdir = tmp_path_factory.mktemp("simulators")
    first = start_simulator(workdir, name="sim1", hold_s=SIM_HOLD_S)
    try:
        second = start_simulator(workdir, name="sim2", hold_s=SIM_HOLD_S)
    except BaseException:
        first.process.stop()
        raise
    try:
        yield first, second
    finally:
        first.process.stop()
        second.process.stop()


@pytest.fixture
def s1(sims: tuple[Simulator, Simulator]) -> Iterator[Simulator]:
    """The first simulator, with zeroed counters and no armed fault, before and after."""
    sims[0].reset()
    yield sims[0]
    sims[0].reset()


@pytest.fixture
def s2(sims: tuple[Simulator, Simulator]) -> Iterator[Simulator]:
    """The second simulator, reset like ``s1``."""
    sims[1].reset()
    yield sims[1]
    sims[1].reset()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start proxies from configs; every one started is stopped at teardown."""
    started: list[Proxy] = []

    def start(config: Mapping[str, Any], *, name: str = "proxy", workers: int = 1) -> Proxy:
        proxy = start_proxy(config, tmp_path / name, kind=Proxy, name=name, workers=workers)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def stub_400() -> Iterator[StubUpstream]:
    """An upstream that rejects every request with a 400."""
    stub = start_stub_upstream(400, "Invalid 'temperature': must be between 0 and 2.")
    yield stub
    stub.close()


@pytest.fixture
def redis_url() -> str:
    """The Redis URL; fails under CI=true, skips otherwise, when Redis is unreachable."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    finally:
        client.close()
    return REDIS_URL
