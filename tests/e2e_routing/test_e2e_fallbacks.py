"""Retries and fallbacks through real processes: the openai SDK -> proxy -> two simulators.

The layout: model A on provider p1 (simulator 1) is the cheapest of the
prompt's tier, B on p2 (simulator 2) the same tier on another provider, and C
the next tier up on an Anthropic-type provider (simulator 1 again). Faults
are armed per upstream model name. Tests share one proxy per configuration
and find their ledger rows by request id; when a shared proxy stops (SIGTERM
flushes its ledger) every request looked at must have exactly one row. Tests
that need a configuration of their own stop their proxy and read its whole
ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from pricing.ledger.row import LedgerRow
from tests.e2e_routing.doubles import StubUpstream
from tests.e2e_routing.harness import (
    SIM_KEY,
    Launch,
    Proxy,
    by_request_id,
    detail,
    iter_sse_data,
    least_tier,
    ledger_url,
    tag,
    tier_above,
)
from tests.support.processes import free_port
from tests.support.servers import Simulator, start_proxy

pytestmark = pytest.mark.e2e

PROMPT = "hi"
MAX_ATTEMPTS = 5
READ_TIMEOUT_S = 1.0
MESSAGES: Any = [{"role": "user", "content": PROMPT}]
BOUNDED_ATTEMPTS = 4
BOUNDED_DEADLINE_S = 1.2
BOUNDED_READ_S = 0.5


class Layout:
    """The model names of one test (unique, so no state leaks between runs)."""

    def __init__(self) -> None:
        uid = tag()
        self.a, self.b, self.c = f"a-{uid}", f"b-{uid}", f"c-{uid}"
        self.tier = least_tier(PROMPT)
        self.up = tier_above(self.tier)


def config(
    layout: Layout,
    s1: Simulator,
    s2: Simulator,
    workdir: Path,
    *,
    p1_url: str | None = None,
    routing: dict[str, Any] | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> dict[str, Any]:
    timeouts = {"connect_timeout_s": 1.0, "read_timeout_s": read_timeout_s}
    return {
        "providers": {
            "p1": {"type": "openai", "base_url": p1_url or s1.openai_base_url, "api_key": SIM_KEY}
            | timeouts,
            "p2": {"type": "openai", "base_url": s2.openai_base_url, "api_key": SIM_KEY} | timeouts,
            "pa": {"type": "anthropic", "base_url": s1.base_url, "api_key": SIM_KEY} | timeouts,
        },
        "models": [
            {
                "name": layout.a,
                "provider": "p1",
                "tier": layout.tier,
                "price": {"input": "0.10", "output": "0.40"},
            },
            {
                "name": layout.b,
                "provider": "p2",
                "tier": layout.tier,
                "price": {"input": "0.20", "output": "0.80"},
            },
            {
                "name": layout.c,
                "provider": "pa",
                "tier": layout.up,
                "price": {"input": "1.00", "output": "2.00"},
            },
        ],
        "routing": {
            "mode": "auto-only",
            "max_attempts": MAX_ATTEMPTS,
            "deadline_s": 10,
            "retry_base_s": 0.01,
            "retry_cap_s": 0.05,
            "breaker_failures": 1000,
        }
        | (routing or {}),
        "cache": {"enabled": False},
        "ledger": {"url": ledger_url(workdir)},
    }


@pytest.fixture(scope="module")
def layout() -> Layout:
    return Layout()


def _module_proxy(
    sims: tuple[Simulator, Simulator],
    tmp_path_factory: pytest.TempPathFactory,
    layout: Layout,
    name: str,
    **options: Any,
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp(name)
    proxy = start_proxy(config(layout, *sims, workdir, **options), workdir, kind=Proxy, name=name)
    try:
        yield proxy
    finally:
        proxy.check_one_row_each()


@pytest.fixture(scope="module")
def proxy(
    sims: tuple[Simulator, Simulator], tmp_path_factory: pytest.TempPathFactory, layout: Layout
) -> Iterator[Proxy]:
    """The proxy of the plain layout, shared by the tests that need nothing else."""
    yield from _module_proxy(sims, tmp_path_factory, layout, "fallbacks")


@pytest.fixture(scope="module")
def bounded(
    sims: tuple[Simulator, Simulator], tmp_path_factory: pytest.TempPathFactory, layout: Layout
) -> Iterator[Proxy]:
    """A proxy with few attempts, a short deadline and short read timeouts."""
    yield from _module_proxy(
        sims,
        tmp_path_factory,
        layout,
        "bounded",
        routing={"max_attempts": BOUNDED_ATTEMPTS, "deadline_s": BOUNDED_DEADLINE_S},
        read_timeout_s=BOUNDED_READ_S,
    )


def client_for(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.openai_base_url, api_key="any", max_retries=0, timeout=30)


def ask(proxy: Proxy) -> tuple[Any, float]:
    """One non-streaming ``auto`` request; the raw response and the seconds it took."""
    with client_for(proxy) as client:
        started = time.monotonic()
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        return raw, time.monotonic() - started


def only_row(proxy: Proxy, request_ids: list[str]) -> list[LedgerRow]:
    """Stop the proxy; assert its ledger has exactly one row per request and no other."""
    proxy.stop()
    rows = proxy.rows()
    found = by_request_id(rows, request_ids)
    assert {i: len(r) for i, r in found.items()} == dict.fromkeys(request_ids, 1)
    assert len(rows) == len(request_ids), [r.request_id for r in rows]
    return [found[i][0] for i in request_ids]


def outcomes(row: LedgerRow) -> list[tuple[str, str, str, int | None]]:
    """(model, provider, outcome, status) of each attempt in the row's detail."""
    return [(d["model"], d["provider"], d["outcome"], d["status"]) for d in detail(row)]


def test_a_429_is_retried_on_the_same_model_after_its_retry_after(
    proxy: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    s1.arm("429", model=m.a)  # the simulator's 429 carries Retry-After: 1

    raw, elapsed = ask(proxy)

    assert raw.parse().choices[0].message.content.startswith("Simulated answer to: hi")
    assert (raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]) == (m.a, "p1")
    assert elapsed >= 0.95, "the retry did not wait for Retry-After: 1"
    assert (s1.calls(m.a), s2.calls(m.b), s1.calls(m.c)) == (2, 0, 0)
    row = proxy.row(raw.headers["x-spendgate-request-id"])
    assert row.attempts == 2
    assert outcomes(row) == [(m.a, "p1", "error", 429), (m.a, "p1", "ok", None)]
    assert detail(row)[0]["error"] == "UpstreamStatusError"
    assert row.served_model == m.a and row.http_status == 200


def test_a_500_twice_falls_back_to_the_same_tier_on_the_other_provider(
    proxy: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    s1.arm("500", model=m.a, count=2)

    raw, _ = ask(proxy)

    assert raw.parse().choices[0].message.content.startswith("Simulated answer")
    assert (raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]) == (m.b, "p2")
    assert (s1.calls(m.a), s2.calls(m.b), s1.calls(m.c)) == (2, 1, 0)
    row = proxy.row(raw.headers["x-spendgate-request-id"])
    assert row.attempts == 3
    assert outcomes(row) == [
        (m.a, "p1", "error", 500),
        (m.a, "p1", "error", 500),
        (m.b, "p2", "ok", None),
    ]
    assert row.served_model == m.b and row.provider == "p2"


def test_503_on_both_providers_moves_up_a_tier_to_another_provider_type(
    proxy: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    s1.arm("503", model=m.a, count=2)
    s2.arm("503", model=m.b, count=2)

    raw, _ = ask(proxy)

    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Simulated answer")
    assert completion.model == m.c
    assert (raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]) == (m.c, "pa")
    assert (s1.calls(m.a), s2.calls(m.b), s1.calls(m.c)) == (2, 2, 1)
    row = proxy.row(raw.headers["x-spendgate-request-id"])
    assert row.attempts == MAX_ATTEMPTS
    assert outcomes(row) == [
        (m.a, "p1", "error", 503),
        (m.a, "p1", "error", 503),
        (m.b, "p2", "error", 503),
        (m.b, "p2", "error", 503),
        (m.c, "pa", "ok", None),
    ]


def test_a_read_timeout_falls_back(
    proxy: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    s1.arm("timeout", model=m.a, count=2)

    raw, elapsed = ask(proxy)

    assert (raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]) == (m.b, "p2")
    assert 2 * READ_TIMEOUT_S * 0.9 <= elapsed < 2 * READ_TIMEOUT_S + 2.0
    row = proxy.row(raw.headers["x-spendgate-request-id"])
    assert outcomes(row) == [
        (m.a, "p1", "error", None),
        (m.a, "p1", "error", None),
        (m.b, "p2", "ok", None),
    ]
    assert [d["error"] for d in detail(row)[:2]] == ["UpstreamTimeoutError"] * 2
    assert all(d["ms"] >= READ_TIMEOUT_S * 1000 * 0.9 for d in detail(row)[:2])


def test_a_refused_connection_falls_back(
    launch: Launch, s1: Simulator, s2: Simulator, tmp_path: Path
) -> None:
    m = Layout()
    closed = f"http://127.0.0.1:{free_port()}/v1"
    proxy = launch(config(m, s1, s2, tmp_path, p1_url=closed))

    raw, _ = ask(proxy)

    assert (raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]) == (m.b, "p2")
    assert s2.calls(m.b) == 1
    (row,) = only_row(proxy, [raw.headers["x-spendgate-request-id"]])
    assert outcomes(row) == [
        (m.a, "p1", "error", None),
        (m.a, "p1", "error", None),
        (m.b, "p2", "ok", None),
    ]
    assert [d["error"] for d in detail(row)[:2]] == ["UpstreamConnectionError"] * 2


def test_a_stream_dropped_before_its_first_byte_falls_back_to_one_clean_stream(
    proxy: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    s1.arm("disconnect", model=m.a, count=2)

    with client_for(proxy) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert (raw.headers["x-spendgate-model"], raw.headers["x-spendgate-provider"]) == (m.b, "p2")
    assert text.startswith("Simulated answer to: hi") and text.endswith("simulated provider.")
    assert {c.model for c in chunks} == {m.b}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    # The same again read raw: one stream, properly ended, no error event in it.
    s1.arm("disconnect", model=m.a, count=2)
    with httpx.stream(
        "POST",
        f"{proxy.openai_base_url}/chat/completions",
        json={"model": "auto", "messages": MESSAGES, "stream": True},
        timeout=30,
    ) as response:
        data = iter_sse_data(response.iter_lines())
        raw_id = response.headers["x-spendgate-request-id"]
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    assert not any('"error"' in d for d in data)

    assert (s1.calls(m.a), s2.calls(m.b)) == (4, 2)
    rows = [proxy.row(raw.headers["x-spendgate-request-id"]), proxy.row(raw_id)]
    for row in rows:
        assert outcomes(row) == [
            (m.a, "p1", "error", None),
            (m.a, "p1", "error", None),
            (m.b, "p2", "ok", None),
        ]
        assert row.http_status == 200 and row.served_model == m.b


def test_a_stream_cut_after_its_first_byte_is_not_retried_and_ends_in_an_error_event(
    proxy: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout

    s1.arm("cut_stream", model=m.a)
    with client_for(proxy) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=MESSAGES, stream=True
        )
        received: list[Any] = []
        with pytest.raises(openai.APIError):
            for chunk in raw.parse():
                received.append(chunk)
    assert received, "the client saw nothing before the cut"
    assert raw.headers["x-spendgate-model"] == m.a

    s1.arm("cut_stream", model=m.a)
    with httpx.stream(
        "POST",
        f"{proxy.openai_base_url}/chat/completions",
        json={"model": "auto", "messages": MESSAGES, "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        data = iter_sse_data(response.iter_lines())
        raw_id = response.headers["x-spendgate-request-id"]
    assert "[DONE]" not in data
    assert len(data) >= 2
    assert "error" in json.loads(data[-1])
    assert all("error" not in json.loads(d) for d in data[:-1])

    # No fallback once bytes reached the client: B was never called, A once per request.
    assert (s1.calls(m.a), s2.calls(m.b), s1.calls(m.c)) == (2, 0, 0)
    rows = [proxy.row(raw.headers["x-spendgate-request-id"]), proxy.row(raw_id)]
    for row in rows:
        assert outcomes(row) == [(m.a, "p1", "ok", None)]
        assert row.http_status >= 500 and row.error_type


def test_an_upstream_400_is_neither_retried_nor_fallen_back_from(
    launch: Launch, s1: Simulator, s2: Simulator, stub_400: StubUpstream, tmp_path: Path
) -> None:
    m = Layout()
    proxy = launch(config(m, s1, s2, tmp_path, p1_url=stub_400.base_url))

    with client_for(proxy) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="auto", messages=MESSAGES)

    assert caught.value.status_code == 400
    assert "temperature" in caught.value.message
    assert caught.value.response.headers["x-spendgate-model"] == m.a
    assert len(stub_400.requests) == 1
    assert stub_400.requests[0]["model"] == m.a
    assert (s2.calls(m.b), s1.calls(m.c)) == (0, 0)
    (row,) = only_row(proxy, [caught.value.response.headers["x-spendgate-request-id"]])
    assert row.attempts == 1
    assert outcomes(row) == [(m.a, "p1", "error", 400)]
    assert row.http_status == 400


def test_attempts_stop_at_max_attempts(
    bounded: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    for sim, model in ((s1, m.a), (s2, m.b), (s1, m.c)):
        sim.arm("500", model=model, count=10)

    with client_for(bounded) as client, pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="auto", messages=MESSAGES)

    assert caught.value.status_code == 502
    assert (s1.calls(m.a), s2.calls(m.b), s1.calls(m.c)) == (2, 2, 0)
    row = bounded.row(caught.value.response.headers["x-spendgate-request-id"])
    assert row.attempts == BOUNDED_ATTEMPTS
    assert outcomes(row) == [
        (m.a, "p1", "error", 500),
        (m.a, "p1", "error", 500),
        (m.b, "p2", "error", 500),
        (m.b, "p2", "error", 500),
    ]
    assert row.http_status == 502


def test_no_attempt_starts_after_the_deadline(
    bounded: Proxy, layout: Layout, s1: Simulator, s2: Simulator
) -> None:
    m = layout
    for sim, model in ((s1, m.a), (s2, m.b), (s1, m.c)):
        sim.arm("timeout", model=model, count=10)

    started = time.monotonic()
    with client_for(bounded) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="auto", messages=MESSAGES)
    elapsed = time.monotonic() - started

    assert caught.value.status_code >= 500
    # Attempts begin only before the deadline, and the deadline also cuts the running one.
    assert elapsed < BOUNDED_DEADLINE_S + 1.0
    assert s1.calls(m.c) == 0
    row = bounded.row(caught.value.response.headers["x-spendgate-request-id"])
    tried = detail(row)
    assert row.attempts == len(tried) >= 2
    assert all(d["outcome"] == "error" for d in tried)
    # The last attempt was cut at the deadline, well before its own read timeout...
    assert tried[-1]["error"] == "UpstreamTimeoutError"
    assert tried[-1]["ms"] < BOUNDED_READ_S * 900
    # ...and the attempts together fit in the deadline: none began after it.
    assert sum(d["ms"] for d in tried) <= BOUNDED_DEADLINE_S * 1000 + 50
    # Two read timeouts leave room for a third attempt only: the deadline ended the run.
    assert sum(d["ms"] >= BOUNDED_READ_S * 900 for d in tried) == 2


def test_a_hung_upstream_does_not_hold_a_request_past_the_deadline(
    launch: Launch, s1: Simulator, s2: Simulator, tmp_path: Path
) -> None:
    """``routing.deadline_s`` bounds the whole request, not only when retries may start."""
    m = Layout()
    read_s, deadline_s = 2.5, 1.0
    proxy = launch(
        config(m, s1, s2, tmp_path, routing={"deadline_s": deadline_s}, read_timeout_s=read_s)
    )
    s1.arm("timeout", model=m.a, count=10)

    started = time.monotonic()
    with client_for(proxy) as client, pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="auto", messages=MESSAGES)
    elapsed = time.monotonic() - started

    assert elapsed < deadline_s + 1.0, f"took {elapsed:.2f} s with deadline_s {deadline_s}"
