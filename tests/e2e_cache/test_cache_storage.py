"""What the main proxy leaves in Redis: hashed key names, sealed values, an expiry.

Prompts and answers never appear in key names (keys are hashes) nor in
values (the main proxy has ``encryption_key`` set), every entry expires
within ``ttl_s``, and no coalescing lock outlives its request.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from tests.e2e_cache.harness import MAIN_TTL_S, MODEL, SHARED_REDIS, Proxy, main_prefix, tagged
from tests.support.servers import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def test_entries_are_hashed_sealed_and_expire(
    proxy: Proxy, fresh_sim: Simulator, run_prefix: str
) -> None:
    tag = tagged("Secret launch code question")
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": tag}]}
    with proxy.client() as client:
        answer = client.chat.completions.create(**body, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        again = client.chat.completions.with_raw_response.create(**body)
    assert again.headers["x-spendgate-cache"] == "exact"
    assert "Secret launch code" in text

    prefix = main_prefix(run_prefix)
    host, port = SHARED_REDIS
    store = redis.Redis(host=host, port=port)
    try:
        deadline = time.monotonic() + 3.0
        while list(store.scan_iter(match=prefix + "lock:*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(store.scan_iter(match=prefix + "lock:*")) == [], "a lock outlived its request"
        names = list(store.scan_iter(match=prefix + "*"))
        assert names, "nothing stored under the proxy's prefix"
        for name in names:
            assert b"Secret" not in name
            value = store.get(name)
            assert isinstance(value, bytes)
            assert b"Secret launch code" not in value and b"Simulated answer" not in value
            assert not value.startswith(b"sgc1"), "stored in plaintext despite encryption_key"
            assert 0 < store.pttl(name) <= MAIN_TTL_S * 1000
    finally:
        store.close()
