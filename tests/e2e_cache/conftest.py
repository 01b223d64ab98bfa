"""Fixtures for the cache end-to-end tests: one simulator and one proxy per session.

The main proxy uses the shared Redis under a key prefix unique to this run,
removed at the end. Tests that need other settings (several workers, a
private Redis, a slow upstream) start their own processes.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_cache.harness import (
    MAIN_TTL_S,
    Proxy,
    delete_prefix,
    main_prefix,
    proxy_config,
    require_shared_redis,
)
from tests.support.processes import child_env
from tests.support.servers import Simulator, start_proxy, start_simulator

# Tenants c and d share one cache namespace; e has the cache switched off.
TENANT_KEYS = {"k-a": "a", "k-b": "b", "k-c": "c", "k-d": "d", "k-e": "e"}
TENANTS = {
    "c": {"cache_namespace": "shared-cd"},
    "d": {"cache_namespace": "shared-cd"},
    "e": {"cache_enabled": False},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def child_environment() -> dict[str, str]:
    """The environment the child processes run with."""
    return child_env()


@pytest.fixture(scope="session")
def run_prefix() -> Iterator[str]:
    """A Redis key prefix no other test run uses; its keys are dropped afterwards."""
    require_shared_redis()
    prefix = f"test:e2e-cache:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(prefix)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-cache")


@pytest.fixture(scope="session")
def sim(workdir: Path, child_environment: dict[str, str]) -> Iterator[Simulator]:
    simulator = start_simulator(workdir, env=child_environment)
    try:
        yield simulator
    finally:
        simulator.process.stop()


@pytest.fixture(scope="session")
def proxy(
    sim: Simulator, run_prefix: str, workdir: Path, child_environment: dict[str, str]
) -> Iterator[Proxy]:
    """The proxy most tests share: Redis backend, encrypted values, five tenants,
    one attempt per request."""
    cache = {
        "backend": "redis",
        "prefix": main_prefix(run_prefix),
        "lookup_timeout_ms": 500,
        "ttl_s": MAIN_TTL_S,
        "encryption_key": base64.b64encode(os.urandom(32)).decode(),
    }
    config = proxy_config(sim, workdir, cache=cache, tenants=TENANTS, keys=TENANT_KEYS)
    server = start_proxy(config, workdir, kind=Proxy, env=child_environment)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def fresh_sim(sim: Simulator) -> Simulator:
    """The session simulator with zeroed counters and no armed fault."""
    sim.reset()
    return sim
