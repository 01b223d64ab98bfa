"""The servers the cache end-to-end tests talk to: simulator, proxy, shared Redis.

A proxy counts as started once its own process listens on its port and
``/healthz`` answers; with ``--workers N``, :meth:`Proxy.wait_for_workers`
also waits until every worker accepts connections.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.e2e_cache.processes import (
    Process,
    StartupError,
    child_env,
    children_of,
    established_by_pid,
    free_port,
    listens_on,
    spawn,
    wait_for,
)

START_TIMEOUT_S = 60.0
SIM_KEY = "sim"
MODEL = "gpt-4o-mini"
CHAT_PATH = "/v1/chat/completions"
SHARED_REDIS = ("127.0.0.1", 6379)
MAIN_TTL_S = 3600


def tagged(text: str) -> str:
    """``text`` with a fresh tag, so no earlier cache entry can answer it."""
    return f"{text} [{uuid.uuid4().hex[:12]}]"


@dataclass
class Simulator:
    """The simulated provider and its control endpoints."""

    process: Process
    base_url: str

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_sim/stats", timeout=5.0)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def chat_calls(self) -> int:
        """Chat completions the simulator has answered since its last reset."""
        count: int = self.stats()["by_endpoint"].get(CHAT_PATH, 0)
        return count

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/_sim/reset", timeout=5.0).raise_for_status()

    def arm(self, mode: str, *, count: int = 1) -> None:
        """Give the next ``count`` requests the fault ``mode``."""
        body = {"mode": mode, "count": count}
        httpx.post(f"{self.base_url}/_sim/faults", json=body, timeout=5.0).raise_for_status()


def start_simulator(workdir: Path, env: Mapping[str, str], *, delay_ms: int = 0) -> Simulator:
    """``python -m proxy.simulator --port 0``; waits for its listening line."""
    name = f"simulator-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, "-m", "proxy.simulator", "--port", "0", "--delay-ms", str(delay_ms)]
    process = spawn(name, argv, workdir=workdir, env=child_env(env))
    marker = "simulated provider listening on "

    def listening() -> str | None:
        for line in process.stdout_path.read_text(encoding="utf-8").splitlines():
            if line.startswith(marker):
                return line[len(marker) :].strip()
        return None

    return Simulator(process, wait_for(process, listening, timeout_s=START_TIMEOUT_S))


def proxy_config(
    sim: Simulator,
    workdir: Path,
    *,
    cache: Mapping[str, Any],
    tenants: Mapping[str, Any] | None = None,
    keys: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A config with one model on ``sim``, no routing, no retries and its own ledger."""
    tenant_keys = keys or {"k-a": "a", "k-b": "b"}
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": sim.openai_base_url, "api_key": SIM_KEY}
        },
        "models": [{"name": MODEL, "provider": "openai", "tier": "small"}],
        # One attempt: an upstream error must reach the client, not be retried away.
        "routing": {"mode": "off", "max_attempts": 1, "breaker_failures": 1000},
        "ledger": {"url": f"sqlite:///{workdir / f'ledger-{uuid.uuid4().hex[:8]}.db'}"},
        "auth": {"keys": [{"key": k, "tenant": t} for k, t in tenant_keys.items()]},
        "tenants": dict(tenants or {}),
        "cache": dict(cache),
    }


@dataclass
class Proxy:
    """A ``spendgate serve`` process."""

    process: Process
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def client(self, key: str = "k-a") -> openai.OpenAI:
        """The official SDK on this proxy, with no retries of its own."""
        return openai.OpenAI(
            base_url=self.openai_base_url, api_key=key, max_retries=0, timeout=20.0
        )

    def readyz(self) -> httpx.Response:
        return httpx.get(f"{self.base_url}/readyz", timeout=5.0)

    def spread(self, connections: int) -> dict[int, int]:
        """Open ``connections`` at once, each with one request; which worker holds how many."""
        go = threading.Barrier(connections + 1, timeout=10)
        done = threading.Event()

        def hold() -> None:
            with httpx.Client(timeout=10.0) as client:
                go.wait()
                client.get(f"{self.base_url}/healthz")
                done.wait(timeout=10)

        threads = [threading.Thread(target=hold) for _ in range(connections)]
        for thread in threads:
            thread.start()
        go.wait()
        time.sleep(0.2)
        spread = established_by_pid(self.port, self.workers())
        done.set()
        for thread in threads:
            thread.join(timeout=10)
        return spread

    def wait_for_workers(self, *, timeout_s: float = START_TIMEOUT_S) -> dict[int, int]:
        """Until every worker accepts connections (one can answer /healthz long before the other)."""
        deadline = time.monotonic() + timeout_s
        spread = self.spread(8)
        while not (spread and all(spread.values())):
            if time.monotonic() > deadline:
                raise StartupError(f"not every worker accepts: {spread}\n{self.process.output()}")
            spread = self.spread(8)
        return spread

    def workers(self) -> list[int]:
        """The worker processes under ``--workers N`` (empty for one process).

        Only children that share the listening socket count: the supervisor
        may have others (a multiprocessing resource tracker).
        """
        return [pid for pid in children_of(self.process.popen.pid) if listens_on(pid, self.port)]


class ProxyLaunch:
    """A ``spendgate serve`` on its way up; several can start side by side.

    Start-up costs seconds (imports, and each worker of ``--workers N`` does
    them again), so tests that need several proxies launch them together.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        env: Mapping[str, str],
        *,
        workers: int = 1,
    ) -> None:
        self._name = f"proxy-{uuid.uuid4().hex[:6]}"
        self._workdir = workdir
        self._env = child_env(env)
        self._workers = workers
        self._config_path = workdir / f"{self._name}.json"
        workdir.mkdir(parents=True, exist_ok=True)
        self._config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self._proxy = self._spawn()

    def _spawn(self) -> Proxy:
        port = free_port()
        argv = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(self._config_path)]
        argv += ["--port", str(port), "--workers", str(self._workers)]
        return Proxy(spawn(self._name, argv, workdir=self._workdir, env=self._env), port)

    def wait(self, *, attempts: int = 3) -> Proxy:
        """The proxy once it listens and ``/healthz`` answers.

        A port picked free can be taken before the child binds it; a child
        that exits during start-up is retried on another port.
        """
        for attempt in range(attempts):
            proxy = self._proxy
            try:
                ready = functools.partial(_serving, proxy, self._workers)
                wait_for(proxy.process, ready, timeout_s=START_TIMEOUT_S)
            except StartupError:
                proxy.process.stop()
                if attempt == attempts - 1:
                    raise
                self._proxy = self._spawn()
                continue
            return proxy
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the child, whether or not it ever became ready."""
        self._proxy.process.stop()


def start_proxy(
    config: Mapping[str, Any],
    workdir: Path,
    env: Mapping[str, str],
    *,
    workers: int = 1,
) -> Proxy:
    """Serve ``config`` on a free port and wait until it is ready."""
    return ProxyLaunch(config, workdir, env, workers=workers).wait()


def _serving(proxy: Proxy, workers: int) -> bool:
    if not listens_on(proxy.process.popen.pid, proxy.port):
        return False
    if workers > 1 and len(proxy.workers()) < workers:
        return False
    try:
        return httpx.get(f"{proxy.base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def shared_redis_reachable() -> str | None:
    """None when the shared Redis answers, else why not."""
    host, port = SHARED_REDIS
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {host}:{port} is unreachable: {exc}"
    finally:
        client.close()
    return None


def require_shared_redis() -> None:
    """Fail when CI=true and the shared Redis is unreachable; skip otherwise."""
    problem = shared_redis_reachable()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(problem)
    pytest.skip(problem)


def main_prefix(run_prefix: str) -> str:
    """Where the session's main proxy keeps its entries."""
    return run_prefix + "main:"


def delete_prefix(prefix: str) -> None:
    """Drop every key under ``prefix`` on the shared Redis."""
    host, port = SHARED_REDIS
    client = redis.Redis(host=host, port=port)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def keys_under(prefix: str) -> int:
    """How many keys the shared Redis holds under ``prefix``."""
    host, port = SHARED_REDIS
    client = redis.Redis(host=host, port=port)
    try:
        return sum(1 for _ in client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()
