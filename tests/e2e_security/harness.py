"""What the security end-to-end tests share: the config, the SDK clients, the ledger as read back.

Every upstream model name carries the run's tag, so a fault armed for one
test's model never lands on another's request, and Redis keys of this run
are recognisable.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
import redis

from pricing.ledger.row import LedgerRow
from tests.support.servers import Proxy as ServedProxy
from tests.support.servers import Simulator

T = TypeVar("T")

SIM_KEY = "sim-key"
ADMIN_KEY = "admin-e2e-secret"
MAIN_KEY, SPENDER_KEY = "k-main", "k-spender"
REDIS_URL = "redis://127.0.0.1:6379/0"
# Budget of the spender tenant: two calls of 5 output tokens at $100 per 1M spend it exactly.
LIMIT_USD = "0.001"
METERED_OUTPUT_PRICE = "100"
METERED_MAX_TOKENS = 5


def tag() -> str:
    """A short random tag for names that must not collide across runs."""
    return uuid.uuid4().hex[:10]


def ledger_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'ledger.db').resolve()}"


def main_config(sim: Simulator, workdir: Path, uid: str, **sections: Any) -> dict[str, Any]:
    """One provider (the simulator); models named per run; a tenant whose budget is tiny."""
    config: dict[str, Any] = {
        "providers": {"openai": {"type": "openai", "base_url": sim.openai_base_url, "api_key": SIM_KEY}},
        "models": [
            {"name": "chat", "provider": "openai", "upstream": f"chat-{uid}", "tier": "large",
             "price": {"input": "1", "output": "2"}},
            {"name": "embed", "provider": "openai", "upstream": f"embed-{uid}",
             "price": {"input": "0.02", "output": "0"}},
            {"name": "metered", "provider": "openai", "upstream": f"metered-{uid}",
             "price": {"input": "0", "output": METERED_OUTPUT_PRICE}},
            {"name": "metered-embed", "provider": "openai", "upstream": f"metered-embed-{uid}",
             "price": {"input": "10", "output": "0"}},
        ],
        "auth": {
            "admin_key": ADMIN_KEY,
            "keys": [{"key": MAIN_KEY, "tenant": f"main-{uid}"},
                     {"key": SPENDER_KEY, "tenant": f"spender-{uid}"}],
        },
        "budgets": [{"name": f"daily-{uid}", "tenant": f"spender-{uid}", "period": "day",
                     "limit_usd": LIMIT_USD}],
        "routing": {"max_attempts": 2, "retry_base_s": 0.01, "retry_cap_s": 0.05,
                    "breaker_failures": 1000},
        "cache": {"backend": "memory"},
        "ledger": {"url": ledger_url(workdir)},
    }  # fmt: skip
    config.update(sections)
    return config


@dataclass
class Proxy(ServedProxy):
    """A ``spendgate serve`` process, as these tests talk to it."""

    def client(self, key: str = MAIN_KEY, **options: Any) -> openai.OpenAI:
        """The official SDK on this proxy, with no retries of its own."""
        options.setdefault("timeout", 30.0)
        return openai.OpenAI(base_url=self.openai_base_url, api_key=key, max_retries=0, **options)

    def rows_where(
        self, match: Callable[[LedgerRow], bool], *, timeout_s: float = 15.0
    ) -> list[LedgerRow]:
        """The ledger rows ``match`` accepts, once the background writer has stored one."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = [r for r in self.rows() if match(r)]
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def wait_for(condition: Callable[[], T], *, timeout_s: float = 10.0, every_s: float = 0.05) -> T:
    """``condition()`` once truthy; its last value when the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def require_redis() -> str:
    """The shared Redis URL; fails under CI=true and skips otherwise when it is unreachable."""
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


def drop_keys(pattern: str) -> None:
    """Delete the shared Redis's keys matching ``pattern``."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
