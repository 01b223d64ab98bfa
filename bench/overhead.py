"""The overhead scenarios: each measured direct to the fake upstream and through Spendgate.

One run starts two fake upstreams (instant, and one with a fixed model
delay), the pass-through floor, and three proxies: ``main`` (memory cache,
routing off, so the requested model is served as is), ``redis`` (the same
with the Redis cache backend under a unique key prefix) and ``features``
(proxy keys, a budget, downgrade routing, cache). Scenarios then run one at
a time, each target measured by a fresh load-generator process.
"""

from __future__ import annotations

import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.load import Kind
from bench.processes import (
    Service,
    cpu_seconds,
    rss_mib,
    run_load,
    start_floor,
    start_proxy,
    start_upstream,
    wait_healthy,
)

CHAT = "/v1/chat/completions"
BENCH_KEY = "sk-bench-0123456789abcdef"
FAST_MODEL = "gpt-4o-mini"
SLOW_MODEL = "gpt-4.1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CACHE_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much load each scenario gets."""

    requests_c1: int = 3000
    duration_s: float = 5.0
    warmup: int = 300
    delay_ms: float = 50.0


SMOKE_SIZES = Sizes(requests_c1=30, duration_s=0.3, warmup=10, delay_ms=50.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One measurement: the same load against several targets."""

    name: str
    description: str
    kinds: tuple[Kind, ...]
    concurrency: int
    proxy: str  # which Spendgate process: main, redis, features
    metric: str = "latency_ms"  # or ttfb_ms for streams
    requests: int | None = None
    duration_s: float | None = None
    slow: bool = False  # direct target is the delayed upstream
    floor: bool = True


def scenarios(sizes: Sizes) -> list[Scenario]:
    """Every scenario of a full run, in order."""
    miss = (Kind("miss", FAST_MODEL),)
    hit = (Kind("hit", FAST_MODEL, unique=False),)
    stream = (Kind("stream", FAST_MODEL, stream=True),)
    slow = (Kind("slow", SLOW_MODEL),)
    n, d = sizes.requests_c1, sizes.duration_s
    return [
        Scenario("latency_c1", "cache miss, concurrency 1", miss, 1, "main", requests=n),
        Scenario("throughput_c32", "cache miss, concurrency 32", miss, 32, "main", duration_s=d),
        Scenario("throughput_c128", "cache miss, concurrency 128", miss, 128, "main", duration_s=d),
        Scenario(
            "stream_ttfb_c1", "streamed miss, time to first body byte", stream, 1, "main",
            metric="ttfb_ms", requests=n,
        ),
        Scenario("cache_hit_memory_c1", "exact hit, memory backend", hit, 1, "main", requests=n),
        Scenario("cache_hit_redis_c1", "exact hit, Redis backend", hit, 1, "redis", requests=n),
        Scenario(
            "upstream_delay_c32", f"{sizes.delay_ms:g} ms upstream, concurrency 32", slow, 32,
            "main", duration_s=d, slow=True, floor=False,
        ),
        Scenario(
            "all_features_c1", "keys, budget, downgrade routing, cache; miss", miss, 1,
            "features", requests=n, floor=False,
        ),
        Scenario(
            "all_features_c32", "keys, budget, downgrade routing, cache; miss", miss, 32,
            "features", duration_s=d, floor=False,
        ),
    ]  # fmt: skip


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
        "ledger": {"url": f"sqlite:///{workdir / f'{name}-ledger.db'}"},
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

    fast: Service
    slow: Service
    floor: Service | None
    proxies: dict[str, Service]

    def all(self) -> list[Service]:
        return [self.fast, self.slow, *filter(None, [self.floor]), *self.proxies.values()]


@contextmanager
def fleet(
    workdir: Path, *, sizes: Sizes, redis_url: str | None, with_floor: bool
) -> Iterator[Fleet]:
    """Start every process; stop them all on the way out."""
    started: list[Service] = []
    redis_prefix = f"spendgate:bench:{uuid.uuid4().hex}:"

    def keep(service: Service) -> Service:
        started.append(service)
        return service

    try:
        fast = keep(start_upstream(workdir, name="upstream"))
        slow = keep(start_upstream(workdir, name="upstream-slow", delay_ms=sizes.delay_ms))
        floor = keep(start_floor(workdir, upstream=fast)) if with_floor else None
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
        for service in started[2:]:  # proxies start together, then are awaited
            wait_healthy(service)
        yield Fleet(fast, slow, floor, proxies)
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


def _targets(scenario: Scenario, fleet_: Fleet) -> list[tuple[str, Service, str | None]]:
    """(label, server, key) for each target of ``scenario``, the direct one first."""
    direct = fleet_.slow if scenario.slow else fleet_.fast
    key = BENCH_KEY if scenario.proxy == "features" else None
    targets: list[tuple[str, Service, str | None]] = [("direct", direct, None)]
    if scenario.floor and fleet_.floor is not None:
        targets.append(("floor", fleet_.floor, None))
    targets.append(("spendgate", fleet_.proxies[scenario.proxy], key))
    return targets


def overhead(direct: dict[str, Any], proxied: dict[str, Any], metric: str) -> dict[str, Any]:
    """Spendgate minus direct (ms) and Spendgate / direct, at p50, p90 and p99."""
    out: dict[str, Any] = {"metric": metric}
    for q in ("p50", "p90", "p99"):
        base, value = direct.get(metric, {}).get(q), proxied.get(metric, {}).get(q)
        if base is None or value is None:
            continue
        out[f"{q}_ms"] = value - base
        out[f"{q}_ratio"] = value / base if base > 0 else None
    if direct.get("rps"):
        out["rps_ratio"] = proxied["rps"] / direct["rps"]
    return out


def cpu_cost(cpu_s: float, requests: int) -> dict[str, float]:
    """The server's CPU per request, and the requests/s one core could serve at that cost.

    CPU time is what the server process itself used, so unlike wall-clock
    latency it does not grow when other work shares the machine.
    """
    if requests <= 0 or cpu_s <= 0:
        return {}
    per_request_us = cpu_s / requests * 1e6
    return {"cpu_us_per_request": per_request_us, "one_core_rps": 1e6 / per_request_us}


def run_scenario(scenario: Scenario, fleet_: Fleet, *, warmup: int) -> dict[str, Any]:
    """Measure ``scenario`` against each of its targets."""
    results: dict[str, Any] = {}
    for label, server, key in _targets(scenario, fleet_):
        cpu_before = cpu_seconds(server.pid)
        summary = run_load(
            server.url(CHAT),
            scenario.kinds,
            concurrency=scenario.concurrency,
            requests=scenario.requests,
            duration_s=scenario.duration_s,
            warmup=warmup,
            key=key,
        )
        cpu_after = cpu_seconds(server.pid)
        if cpu_before is not None and cpu_after is not None:
            summary.update(cpu_cost(cpu_after - cpu_before, summary["requests"] + warmup))
        results[label] = summary
    entry: dict[str, Any] = {
        "description": scenario.description,
        "concurrency": scenario.concurrency,
        "proxy": scenario.proxy,
        "results": results,
        "overhead": overhead(results["direct"], results["spendgate"], scenario.metric),
    }
    if "floor" in results:
        entry["floor_overhead"] = overhead(results["direct"], results["floor"], scenario.metric)
    return entry


Progress = Callable[[str], None]


def run_all(
    *,
    sizes: Sizes,
    redis_url: str | None = DEFAULT_REDIS_URL,
    with_floor: bool = True,
    workdir: Path | None = None,
    progress: Progress = lambda line: None,
    during_load: Callable[[Fleet], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Start the fleet, run every scenario, and return the results document."""
    plan = scenarios(sizes)
    skipped: dict[str, str] = {}
    if redis_url is not None and not redis_reachable(redis_url):
        skipped["cache_hit_redis_c1"] = f"Redis unreachable at {redis_url}"
        redis_url = None
    plan = [s for s in plan if s.name not in skipped]
    with tempfile.TemporaryDirectory(prefix="spendgate-bench-") as tmp:
        root = workdir or Path(tmp)
        with fleet(root, sizes=sizes, redis_url=redis_url, with_floor=with_floor) as running:
            main_pid = running.proxies["main"].pid
            rss: dict[str, Any] = {"main_before_mib": rss_mib(main_pid)}
            results: dict[str, Any] = {}
            for scenario in plan:
                progress(f"{scenario.name}: {scenario.description}")
                results[scenario.name] = run_scenario(scenario, running, warmup=sizes.warmup)
            rss["main_after_mib"] = rss_mib(main_pid)
            for name, service in running.proxies.items():
                rss[f"{name}_end_mib"] = rss_mib(service.pid)
            extra = during_load(running) if during_load is not None else {}
    return {
        "sizes": asdict(sizes),
        "scenarios": results,
        "skipped": skipped,
        "rss": rss,
        **extra,
    }
