"""Circuit breakers through real processes: closed -> open -> half-open -> closed.

Model A on provider p1 is the cheapest, B on p2 its same-tier fallback. With
``breaker_failures: 2`` two failures of A open its circuit; while open, A is
not called at all (its simulator's count stays put); after ``breaker_open_s``
one probe goes through and its success closes the circuit. With
``cache.backend: redis`` the state is shared: a circuit opened through one
proxy process is open for another.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.e2e_routing.harness import (
    SIM_KEY,
    Launch,
    Proxy,
    detail,
    gauge,
    least_tier,
    ledger_url,
    tag,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e

PROMPT = "hi"
MESSAGES: Any = [{"role": "user", "content": PROMPT}]
OPEN_S = 2.0


def breaker_config(
    uid: str, s1: Simulator, s2: Simulator, workdir: Path, *, cache: dict[str, Any]
) -> dict[str, Any]:
    tier = least_tier(PROMPT)
    return {
        "providers": {
            "p1": {"type": "openai", "base_url": s1.openai_base_url, "api_key": SIM_KEY},
            "p2": {"type": "openai", "base_url": s2.openai_base_url, "api_key": SIM_KEY},
        },
        "models": [
            {
                "name": f"a-{uid}",
                "provider": "p1",
                "tier": tier,
                "price": {"input": "0.1", "output": "0.4"},
            },
            {
                "name": f"b-{uid}",
                "provider": "p2",
                "tier": tier,
                "price": {"input": "0.2", "output": "0.8"},
            },
        ],
        "routing": {
            "mode": "auto-only",
            "max_attempts": 4,
            "retry_base_s": 0.01,
            "retry_cap_s": 0.05,
            "breaker_failures": 2,
            "breaker_open_s": OPEN_S,
        },
        "cache": cache,
        "ledger": {"url": ledger_url(workdir)},
    }


def ask(proxy: Proxy) -> Any:
    with openai.OpenAI(
        base_url=proxy.openai_base_url, api_key="any", max_retries=0, timeout=30
    ) as client:
        return client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)


def served(raw: Any) -> tuple[str, str]:
    return raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]


def circuit(proxy: Proxy, target: str) -> float | None:
    return gauge(proxy.metrics(), "spendgate_circuit_open", f'target="{target}"')


def test_a_circuit_opens_skips_its_model_then_a_probe_closes_it(
    launch: Launch, s1: Simulator, s2: Simulator, tmp_path: Path
) -> None:
    uid = tag()
    a, b = f"a-{uid}", f"b-{uid}"
    proxy = launch(breaker_config(uid, s1, s2, tmp_path, cache={"enabled": False}))

    s1.arm("500", model=a, count=2)
    opening = ask(proxy)
    opened_at = time.monotonic()
    assert served(opening) == (b, "p2")
    assert s1.calls(a) == 2
    assert circuit(proxy, f"p1/{a}") == 1

    # Open: A is passed over without a call, even though it would answer now.
    skipped = [ask(proxy) for _ in range(3)]
    assert time.monotonic() - opened_at < OPEN_S, "too slow to observe the open state"
    assert [served(r) for r in skipped] == [(b, "p2")] * 3
    assert s1.calls(a) == 2
    assert s2.calls(b) == 4
    assert circuit(proxy, f"p1/{a}") == 1

    # Half-open after open_s: one probe reaches A, succeeds and closes the circuit.
    time.sleep(max(0.0, opened_at + OPEN_S + 0.2 - time.monotonic()))
    probe = ask(proxy)
    assert served(probe) == (a, "p1")
    assert s1.calls(a) == 3
    assert circuit(proxy, f"p1/{a}") == 0
    after = ask(proxy)
    assert served(after) == (a, "p1")
    assert s1.calls(a) == 4

    ids = [r.headers["x-spendgate-request-id"] for r in (opening, *skipped, probe, after)]
    proxy.stop()
    rows = {row.request_id: row for row in proxy.rows()}
    assert set(ids) <= set(rows) and len(rows) == len(ids)
    assert [d["outcome"] for d in detail(rows[ids[0]])] == ["error", "error", "ok"]
    for request_id in ids[1:4]:
        assert [(d["model"], d["outcome"]) for d in detail(rows[request_id])] == [(b, "ok")]
    assert [(d["model"], d["outcome"]) for d in detail(rows[ids[4]])] == [(a, "ok")]


@pytest.fixture
def redis_breakers(redis_url: str) -> Iterator[tuple[str, str]]:
    """A run tag for model names and the cache section; the run's Redis keys go at teardown."""
    uid = tag()
    yield uid, redis_url
    client = redis.Redis.from_url(redis_url)
    try:
        # cache.prefix alone puts every key of the proxy under it, breakers included.
        keys = list(client.scan_iter(match=f"e2e-routing-{uid}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_a_circuit_opened_through_one_process_is_open_in_another(
    launch: Launch,
    s1: Simulator,
    s2: Simulator,
    tmp_path: Path,
    redis_breakers: tuple[str, str],
) -> None:
    uid, redis_url = redis_breakers
    a, b = f"a-{uid}", f"b-{uid}"
    cache = {
        "enabled": False,
        "backend": "redis",
        "redis_url": redis_url,
        "prefix": f"e2e-routing-{uid}:",
    }
    first = launch(breaker_config(uid, s1, s2, tmp_path / "one", cache=cache), name="first")
    second = launch(breaker_config(uid, s1, s2, tmp_path / "two", cache=cache), name="second")

    assert served(ask(second)) == (a, "p1")  # closed everywhere to start with
    s1.arm("500", model=a, count=2)
    assert served(ask(first)) == (b, "p2")
    opened_at = time.monotonic()
    assert s1.calls(a) == 3

    # The other process has seen no failure of A itself, yet does not call it.
    crossed = ask(second)
    assert time.monotonic() - opened_at < OPEN_S, "too slow to observe the open state"
    assert served(crossed) == (b, "p2")
    assert s1.calls(a) == 3
    assert circuit(second, f"p1/{a}") == 1

    # And the state lives in Redis under the deployment's prefix.
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hget(f"e2e-routing-{uid}:breaker:p1/{a}", "opened_at") is not None
    finally:
        client.close()

    request_id = crossed.headers["x-spendgate-request-id"]
    second.stop()
    (row,) = [r for r in second.rows() if r.request_id == request_id]
    # This process still offered A (it last saw A succeed); Redis said no at the call.
    assert [(d["model"], d["outcome"]) for d in detail(row)] == [(a, "skipped"), (b, "ok")]
