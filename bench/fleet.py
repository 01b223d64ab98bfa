"""The processes of one benchmark run: fake upstreams, pass-through floors, proxies.

Two fake upstreams (instant, and one with a fixed model delay), a floor in
front of each, and three proxies: ``main`` (memory cache, routing off, so
the requested model is served as is), ``redis`` (the same with the Redis
cache backend under a unique key prefix) and ``features`` (proxy keys, a
budget, downgrade routing, cache). Every proxy keeps its SQLite ledger (and
access log) on and runs ``server.loop_lag_probe``.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.processes import Service, start_floor, start_proxy, start_upstream, wait_healthy

BENCH_KEY = "sk-bench-0123456789abcdef"
FAST_MODEL = "gpt-4o-mini"
SLOW_MODEL = "gpt-4.1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CACHE_MAX_BYTES = 64 * 1024 * 1024


def ledger_path(workdir: Path, name: str) -> Path:
    """Where proxy ``name`` keeps its SQLite ledger."""
    return workdir / f"{name}-ledger.db"


def proxy_config(
    *,
    fast: Service,
    slow: Service,
    workdir: Path,
    name: str,
    redis: tuple[str, str] | None = None,
    features: bool = False,
) -> dict[str, Any]:
    """A Spendgate config serving the fake upstreams; ``redis`` is (URL, key prefix)."""
    cache: dict[str, Any] = {"backend": "memory", "max_bytes": CACHE_MAX_BYTES}
    if redis is not None:
        cache = {"backend": "redis", "redis_url": redis[0], "prefix": redis[1]}
    config: dict[str, Any] = {
        "providers": {
            "bench": {"type": "openai", "base_url": fast.url("/v1"), "api_key": "bench"},
            "slow": {"type": "openai", "base_url": slow.url("/v1"), "api_key": "bench"},
        },
        "models": [
            {"name": "gpt-4o", "provider": "bench", "tier": "large"},
            {"name": "gpt-4.1-mini", "provider": "bench", "tier": "medium"},
            {"name": FAST_MODEL, "provider": "bench", "tier": "small"},
            {"name": SLOW_MODEL, "provider": "slow", "tier": "large"},
        ],
        "routing": {"mode": "off"},
        "cache": cache,
        "ledger": {"url": f"sqlite:///{ledger_path(workdir, name)}"},
        "server": {"access_log": True, "loop_lag_probe": True},
    }
    if features:
        config["routing"] = {"mode": "downgrade", "baseline_model": "gpt-4o"}
        config["auth"] = {
            "admin_key": "bench-admin",
            "keys": [{"key": BENCH_KEY, "tenant": "bench", "name": "bench"}],
        }
        config["budgets"] = [{"period": "day", "tenant": "bench", "limit_usd": 1_000_000}]
    return config


def redis_reachable(url: str) -> bool:
    """Whether something accepts TCP connections at the Redis URL's address."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1.0):
            return True
    except OSError:
        return False


@dataclass
class Fleet:
    """The processes of one run."""

    workdir: Path
    fast: Service
    slow: Service
    floors: dict[str, Service]  # by upstream: "fast", "slow"
    proxies: dict[str, Service]


@contextmanager
def fleet(
    workdir: Path, *, delay_ms: float, redis_url: str | None, with_floor: bool
) -> Iterator[Fleet]:
    """Start every process; stop them all on the way out."""
    started: list[Service] = []
    redis_prefix = f"spendgate:bench:{uuid.uuid4().hex}:"

    def keep(service: Service) -> Service:
        started.append(service)
        return service

    try:
        fast = keep(start_upstream(workdir, name="upstream"))
        slow = keep(start_upstream(workdir, name="upstream-slow", delay_ms=delay_ms))
        floors: dict[str, Service] = {}
        if with_floor:
            floors["fast"] = keep(start_floor(workdir, upstream=fast))
            floors["slow"] = keep(start_floor(workdir, upstream=slow, name="floor-slow"))
        proxies: dict[str, Service] = {}
        for name, redis, features in (
            ("main", None, False),
            ("redis", (redis_url, redis_prefix) if redis_url else None, False),
            ("features", None, True),
        ):
            if name == "redis" and redis is None:
                continue
            config = proxy_config(
                fast=fast, slow=slow, workdir=workdir, name=name, redis=redis, features=features
            )
            proxies[name] = keep(start_proxy(workdir, config, name=name))
        for service in started[2:]:  # floors and proxies start together, then are awaited
            wait_healthy(service)
        yield Fleet(workdir, fast, slow, floors, proxies)
    finally:
        for service in reversed(started):
            service.stop()
        if redis_url is not None:
            drop_redis_prefix(redis_url, redis_prefix)


def drop_redis_prefix(url: str, prefix: str) -> int:
    """Delete the run's cache keys from Redis; how many there were."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5.0)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()
