"""Redis absent at start-up, then killed mid-traffic: no request fails, the cache recovers.

The proxy starts before its private ``redis-server`` exists. While a client
sends a steady stream of requests (repeats and new prompts), Redis is
started, later killed with SIGKILL, kept down for about two seconds and
restarted empty on the same port. Every request must still succeed,
``/readyz`` must report the cache down during each outage (without turning
the proxy unready: the cache is not critical), and hits must come back by
themselves each time Redis does.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_cache.harness import MODEL, Proxy, proxy_config, tagged
from tests.support.processes import free_port
from tests.support.redis_server import RedisServer
from tests.support.servers import Simulator, start_proxy

pytestmark = [pytest.mark.e2e]

DOWN_S = 2.0
RECOVERY_DEADLINE_S = 25.0
REPEATED = 3


@dataclass(frozen=True)
class Outcome:
    at: float
    status: int
    cache: str | None
    error: str | None = None


class Traffic:
    """A thread sending requests one after another until stopped."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._stop = threading.Event()
        self.outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=self._run, name="traffic")
        tag = tagged("")
        self._repeats = [f"Repeat question {i} {tag}" for i in range(REPEATED)]

    def _bodies(self) -> Iterator[dict[str, Any]]:
        for n in itertools.count():
            # Two repeats, then one new prompt: hits when the cache works, misses always.
            text = tagged("A new question") if n % 3 == 2 else self._repeats[n % REPEATED]
            yield {"model": MODEL, "messages": [{"role": "user", "content": text}]}

    def _run(self) -> None:
        headers = {"authorization": "Bearer k-a"}
        url = f"{self._proxy.openai_base_url}/chat/completions"
        with httpx.Client(timeout=10.0, headers=headers) as client:
            for body in self._bodies():
                if self._stop.is_set():
                    return
                try:
                    response = client.post(url, json=body)
                except httpx.HTTPError as exc:
                    self.outcomes.append(Outcome(time.monotonic(), 0, None, repr(exc)))
                    continue
                cache = response.headers.get("x-spendgate-cache")
                self.outcomes.append(Outcome(time.monotonic(), response.status_code, cache))
                time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def hit_since(self, moment: float) -> Outcome | None:
        return next((o for o in self.outcomes if o.at > moment and o.cache == "exact"), None)


def cache_check(proxy: Proxy) -> tuple[int, dict[str, Any]]:
    """(HTTP status of /readyz, its cache check)."""
    response = proxy.readyz()
    check: dict[str, Any] = response.json()["checks"]["cache"]
    return response.status_code, check


def cache_down(proxy: Proxy) -> tuple[int, dict[str, Any]] | None:
    """/readyz's answer when it reports the cache down, else None."""
    status, check = cache_check(proxy)
    return None if check["ok"] else (status, check)


def poll(condition: Any, *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def private_redis(workdir: Path) -> Iterator[RedisServer]:
    """A private Redis on a free port, not started yet."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(workdir / "redis", free_port())
    try:
        yield server
    finally:
        server.kill()


@dataclass(frozen=True)
class Outage:
    began: float
    ended: float
    readyz_status: int
    cache_check: dict[str, Any]


def outage(proxy: Proxy, server: RedisServer, *, began: float) -> Outage:
    """While Redis is away: /readyz must say so within DOWN_S; then Redis (re)starts."""
    status, check = poll(lambda: cache_down(proxy), timeout_s=DOWN_S, what="/readyz: cache down")
    time.sleep(max(0.0, began + DOWN_S - time.monotonic()))
    ended = time.monotonic()
    server.start()
    return Outage(began, ended, status, check)


def test_requests_survive_redis_absent_then_restarted(
    sim: Simulator, private_redis: RedisServer, workdir: Path, child_environment: dict[str, str]
) -> None:
    cache = {"backend": "redis", "redis_url": private_redis.url, "lookup_timeout_ms": 250}
    proxy = start_proxy(
        proxy_config(sim, workdir, cache=cache), workdir, kind=Proxy, env=child_environment
    )
    outages = []
    try:
        with Traffic(proxy) as traffic:
            for n in range(2):
                if n:
                    private_redis.kill()
                outages.append(outage(proxy, private_redis, began=time.monotonic()))
                poll(
                    lambda: traffic.hit_since(outages[-1].ended),
                    timeout_s=RECOVERY_DEADLINE_S,
                    what="a hit once Redis is back",
                )
                poll(lambda: cache_check(proxy)[1]["ok"], timeout_s=10, what="/readyz: cache ok")
        outcomes = list(traffic.outcomes)
    finally:
        proxy.process.stop()

    failed = [o for o in outcomes if o.status != 200]
    assert not failed, failed
    for down in outages:
        assert down.readyz_status == 200, "a cache outage made the proxy unready"
        assert down.cache_check["critical"] is False and down.cache_check["backend"] == "redis"
        during = [o for o in outcomes if down.began < o.at < down.ended]
        assert len(during) >= 5, "too few requests while Redis was down"
        assert all(o.cache == "miss" for o in during), during
