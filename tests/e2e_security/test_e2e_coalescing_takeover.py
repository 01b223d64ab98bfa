"""A coalescing leader that fails hands over to one follower: two upstream calls, not N+1.

Six identical requests arrive while the first one's upstream call is still
out; that call fails (a 500 that takes 1.5 s, with no retry), so one of the
five waiting requests becomes the new leader and the other four get its
answer. The simulator counts the calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e_security.harness import MAIN_KEY, Proxy, main_config
from tests.support.servers import Simulator, start_proxy

pytestmark = pytest.mark.e2e

CLIENTS = 6
HOLD_MS = 1500


@pytest.fixture(scope="module")
def coalescing_proxy(
    sim: Simulator, uid: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    workdir: Path = tmp_path_factory.mktemp("coalescing")
    # One attempt: the leader's failure must end its request, not be retried away.
    config = main_config(
        sim, workdir, uid, routing={"mode": "off", "max_attempts": 1, "breaker_failures": 1000}
    )
    served = start_proxy(config, workdir, kind=Proxy, name="coalescing")
    try:
        yield served
    finally:
        served.stop()


def one(proxy: Proxy, go: threading.Barrier, prompt: str) -> Any:
    with proxy.client(MAIN_KEY) as client:
        client.models.list()  # the connection is open before the race starts
        go.wait(timeout=10)
        try:
            return client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": prompt}]
            )
        except openai.APIStatusError as exc:
            return exc


def test_a_failing_leader_makes_exactly_two_upstream_calls(
    coalescing_proxy: Proxy, fresh_sim: Simulator, uid: str
) -> None:
    fresh_sim.arm("500", count=1, model=f"chat-{uid}", hold_ms=HOLD_MS)
    prompt = f"Name a colour. [{uid}-{threading.get_ident()}]"
    go = threading.Barrier(CLIENTS)
    results: list[Any] = [None] * CLIENTS

    def run(i: int) -> None:
        results[i] = one(coalescing_proxy, go, prompt)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert fresh_sim.calls(f"chat-{uid}") == 2, fresh_sim.stats()
    failed = [r for r in results if isinstance(r, openai.APIStatusError)]
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    assert len(failed) == 1 and failed[0].status_code == 502  # the leader that failed
    assert len(served) == CLIENTS - 1
    assert len({r.parse().id for r in served}) == 1  # one answer, shared
    statuses = sorted(r.headers["x-spendgate-cache"] for r in served)
    assert statuses == ["exact"] * (CLIENTS - 2) + ["miss"]  # one new leader, the rest followed
