"""One policy for chat, embeddings and responses, through the real server and the openai SDK."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.e2e_security.harness import (
    ADMIN_KEY,
    LIMIT_USD,
    METERED_MAX_TOKENS,
    SPENDER_KEY,
    Proxy,
    wait_for,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e


def unique(text: str) -> str:
    return f"[{uuid.uuid4().hex[:12]}] {text}"


def call(client: openai.OpenAI, endpoint: str, model: str, **extra: Any) -> Any:
    """One request to ``endpoint``; the raw response (headers and parsed body)."""
    if endpoint == "chat":
        return client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": unique("Say hello.")}], **extra
        )
    if endpoint == "embeddings":
        return client.embeddings.with_raw_response.create(
            model=model, input=unique("embed"), **extra
        )
    return client.responses.with_raw_response.create(
        model=model, input=unique("Say hello."), **extra
    )


def budget(proxy: Proxy, name: str) -> dict[str, Any]:
    response = httpx.get(
        f"{proxy.base_url}/admin/budgets",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=5.0,
    )
    response.raise_for_status()
    [found] = [b for b in response.json()["budgets"] if b["name"] == name]
    return dict(found)


def test_a_spent_budget_blocks_chat_embeddings_and_responses(
    proxy: Proxy, fresh_sim: Simulator, uid: str
) -> None:
    name = f"daily-{uid}"
    with proxy.client(SPENDER_KEY) as client:
        # Two answers of exactly 5 output tokens at $100 per 1M: $0.0005 each, the whole $0.001.
        for _ in range(2):
            served = call(client, "chat", "metered", max_tokens=METERED_MAX_TOKENS)
            assert served.headers["x-spendgate-cost-usd"] == "0.000500"
        spent = wait_for(lambda: budget(proxy, name)["remaining_usd"] == "0.000000")
        assert spent, budget(proxy, name)
        assert budget(proxy, name)["used_usd"] == "0.001000" == f"{Decimal(LIMIT_USD):.6f}"
        calls_before = fresh_sim.stats()["requests"]
        for endpoint, model, extra in (
            ("chat", "metered", {"max_tokens": METERED_MAX_TOKENS}),
            ("chat", "metered", {"max_tokens": METERED_MAX_TOKENS, "stream": True}),
            ("embeddings", "metered-embed", {}),
            ("responses", "metered", {"max_output_tokens": METERED_MAX_TOKENS}),
            ("responses", "metered", {"max_output_tokens": METERED_MAX_TOKENS, "stream": True}),
        ):
            with pytest.raises(openai.RateLimitError) as refused:
                call(client, endpoint, model, **extra)
            body = refused.value.body
            assert isinstance(body, dict) and body["type"] == "budget_exceeded", (endpoint, body)
            assert f"budget '{name}'" in body["message"] and "remaining $0" in body["message"]
    assert fresh_sim.stats()["requests"] == calls_before  # refused before any upstream call


@pytest.mark.parametrize(("endpoint", "model", "upstream"), [
    ("embeddings", "embed", "embed"), ("responses", "chat", "chat"),
])  # fmt: skip
def test_one_upstream_500_is_retried(
    proxy: Proxy, fresh_sim: Simulator, uid: str, endpoint: str, model: str, upstream: str
) -> None:
    fresh_sim.arm("500", count=1, model=f"{upstream}-{uid}")
    with proxy.client() as client:
        raw = call(client, endpoint, model)
    assert raw.status_code == 200
    assert fresh_sim.calls(f"{upstream}-{uid}") == 2
    assert fresh_sim.stats()["by_status"] == {"500": 1, "200": 1}
    request_id = raw.headers["x-spendgate-request-id"]
    [row] = proxy.rows_where(lambda r: r.request_id == request_id)
    assert row.attempts == 2 and row.http_status == 200
    assert row.price_source == "config" and row.cost is not None  # priced, and billed once
    assert row.prompt_tokens > 0 and row.usage_source == "upstream"


@pytest.mark.parametrize("endpoint", ["chat", "embeddings", "responses"])
def test_a_300_character_tag_is_refused_naming_its_header(
    proxy: Proxy, fresh_sim: Simulator, endpoint: str
) -> None:
    model = "embed" if endpoint == "embeddings" else "chat"
    with proxy.client() as client, pytest.raises(openai.BadRequestError) as refused:
        call(client, endpoint, model, extra_headers={"x-spendgate-workflow": "w" * 300})
    assert refused.value.status_code == 400
    assert refused.value.param == "x-spendgate-workflow"
    assert refused.value.code == "tag_too_long"
    assert "x-spendgate-workflow is 300 characters long" in refused.value.message
    assert fresh_sim.stats()["requests"] == 0


@pytest.mark.parametrize(("endpoint", "model", "upstream"), [
    ("chat", "chat", "chat"), ("embeddings", "embed", "embed"), ("responses", "chat", "chat"),
])  # fmt: skip
def test_a_client_that_gives_up_cancels_the_upstream_call(
    proxy: Proxy, fresh_sim: Simulator, uid: str, endpoint: str, model: str, upstream: str
) -> None:
    fresh_sim.arm("slow", count=1, model=f"{upstream}-{uid}", delay_ms=20_000)
    run = f"gave-up-{uuid.uuid4().hex[:8]}"
    with proxy.client(timeout=1.0) as client, pytest.raises(openai.APITimeoutError):
        call(client, endpoint, model, extra_headers={"x-spendgate-run": run})
    # The simulator saw its caller leave long before its 20 s answer was due.
    assert wait_for(lambda: fresh_sim.stats()["cancelled"] == 1, timeout_s=10.0), fresh_sim.stats()
    [row] = proxy.rows_where(lambda r: r.run == run)
    assert row.http_status == 499 and row.error_type == "client_disconnected"
    assert row.served_model == model
