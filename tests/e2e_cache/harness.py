"""The servers the cache end-to-end tests talk to: simulator, proxy, shared Redis.

Processes come from ``tests.support``; here, what the cache tests add: a
proxy config with one model and its own ledger, an SDK client per tenant key,
how connections spread over ``--workers N``, and the shared Redis.
"""

from __future__ import annotations

import os
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

from tests.support.processes import START_TIMEOUT_S, StartupError
from tests.support.servers import Proxy as ServedProxy
from tests.support.servers import Simulator
from tests.support.sockets import established_by_pid

SIM_KEY = "sim"
MODEL = "gpt-4o-mini"
SHARED_REDIS = ("127.0.0.1", 6379)
MAIN_TTL_S = 3600


def tagged(text: str) -> str:
    """``text`` with a fresh tag, so no earlier cache entry can answer it."""
    return f"{text} [{uuid.uuid4().hex[:12]}]"


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
class Proxy(ServedProxy):
    """A ``spendgate serve`` process, as the cache tests look at it."""

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
                raise StartupError(
                    f"not every worker accepts: {spread}\n{self.process.describe()}",
                    exited=False,
                )
            spread = self.spread(8)
        return spread


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
