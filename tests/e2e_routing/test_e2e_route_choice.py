"""Which model serves a request: complexity tiers, routing modes, capability filters.

One proxy holds one model per tier (small on p1, medium on p1, large on p2)
and three proxy keys whose ``routing_mode`` differs, so every mode is tried
against the same models. A second proxy holds catalog models whose
capabilities differ (deepseek-reasoner has no tools; gpt-4o-mini has) and
gives the cheap one a small ``context_window``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e_routing.harness import (
    SIM_KEY,
    Launch,
    Proxy,
    least_tier,
    ledger_url,
    tag,
)
from tests.support.servers import Simulator, start_proxy

pytestmark = pytest.mark.e2e

EASY = "hi"
HARD = (
    "Prove that for every integer $n \\ge 1$, $\\sum_{k=1}^{n} k^3 = "
    "\\left(\\frac{n(n+1)}{2}\\right)^2$, then derive a closed form for "
    "$\\sum_{k=1}^{n} k^4$ and explain each step rigorously."
)
KEYS = {"auto-only": "k-auto-only", "downgrade": "k-downgrade", "off": "k-off"}
TIERS = ("small", "medium", "large")


class Models:
    def __init__(self) -> None:
        uid = tag()
        self.by_tier = {t: f"{t}-{uid}" for t in TIERS}
        self.provider = {"small": "p1", "medium": "p1", "large": "p2"}


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


@pytest.fixture(scope="module")
def router(
    sims: tuple[Simulator, Simulator], tmp_path_factory: pytest.TempPathFactory, models: Models
) -> Iterator[Proxy]:
    s1, s2 = sims
    workdir = tmp_path_factory.mktemp("route-choice")
    prices = {"small": ("0.10", "0.40"), "medium": ("1.00", "4.00"), "large": ("5.00", "20.00")}
    config = {
        "providers": {
            "p1": {"type": "openai", "base_url": s1.openai_base_url, "api_key": SIM_KEY},
            "p2": {"type": "openai", "base_url": s2.openai_base_url, "api_key": SIM_KEY},
        },
        "models": [
            {
                "name": models.by_tier[t],
                "provider": models.provider[t],
                "tier": t,
                "price": {"input": prices[t][0], "output": prices[t][1]},
            }
            for t in TIERS
        ],
        "auth": {
            "keys": [
                {"key": key, "tenant": "routing", "routing_mode": mode}
                for mode, key in KEYS.items()
            ]
        },
        "routing": {"mode": "auto-only", "retry_base_s": 0.01, "breaker_failures": 1000},
        "cache": {"enabled": False},
        "ledger": {"url": ledger_url(workdir)},
    }
    proxy = start_proxy(config, workdir, kind=Proxy, name="route-choice")
    try:
        yield proxy
    finally:
        proxy.stop()


def ask(
    proxy: Proxy,
    text: str,
    *,
    model: str = "auto",
    mode: str = "auto-only",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    with openai.OpenAI(
        base_url=proxy.openai_base_url, api_key=KEYS[mode], max_retries=0, timeout=30
    ) as client:
        return client.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": text}],
            extra_headers=headers,
            **extra,
        )


def served(raw: Any) -> str:
    model: str = raw.headers["x-spendgate-model"]
    assert raw.parse().model == model
    return model


def test_auto_sends_an_easy_short_prompt_to_the_small_tier(router: Proxy, models: Models) -> None:
    raw = ask(router, EASY)

    assert served(raw) == models.by_tier["small"], raw.headers["x-spendgate-route-reason"]
    assert raw.headers["x-spendgate-provider"] == "p1"
    reason = raw.headers["x-spendgate-route-reason"]
    assert reason.startswith("score ") and "-> small" in reason


def test_auto_sends_a_hard_prompt_to_a_larger_tier_than_an_easy_one(
    router: Proxy, models: Models
) -> None:
    easy, hard = ask(router, EASY), ask(router, HARD)

    tier_of = {name: t for t, name in models.by_tier.items()}
    assert tier_of[served(hard)] != "small"
    assert TIERS.index(tier_of[served(hard)]) > TIERS.index(tier_of[served(easy)])
    reason = hard.headers["x-spendgate-route-reason"]
    assert f"-> {tier_of[served(hard)]}: {served(hard)}" in reason
    assert any(word in reason.lower() for word in ("math", "proof", "long"))


def test_downgrade_replaces_a_requested_large_model_for_an_easy_prompt(
    router: Proxy, models: Models
) -> None:
    large = models.by_tier["large"]
    least = least_tier(EASY)
    assert least != "large", "the scorer gives an easy prompt the large tier: nothing to test"

    raw = ask(router, EASY, model=large, mode="downgrade")

    assert served(raw) == models.by_tier[least]
    assert f"-> {least}: {models.by_tier[least]}" in raw.headers["x-spendgate-route-reason"]
    cost = raw.headers["x-spendgate-cost-usd"]
    baseline = raw.headers["x-spendgate-baseline-usd"]
    assert float(cost) < float(baseline), (cost, baseline)


def test_downgrade_never_upgrades_a_requested_small_model(router: Proxy, models: Models) -> None:
    small = models.by_tier["small"]

    raw = ask(router, HARD, model=small, mode="downgrade")

    assert served(raw) == small
    assert f"keeps {small}" in raw.headers["x-spendgate-route-reason"]


def test_the_route_off_header_pins_the_requested_model(router: Proxy, models: Models) -> None:
    large = models.by_tier["large"]

    raw = ask(router, EASY, model=large, mode="downgrade", headers={"x-spendgate-route": "off"})

    assert served(raw) == large
    assert raw.headers["x-spendgate-provider"] == "p2"
    assert (
        raw.headers["x-spendgate-route-reason"] == f"x-spendgate-route: off: {large} as requested"
    )


def test_auto_only_serves_a_requested_model_as_is(router: Proxy, models: Models) -> None:
    large = models.by_tier["large"]

    raw = ask(router, EASY, model=large, mode="auto-only")

    assert served(raw) == large
    assert raw.headers["x-spendgate-route-reason"] == f"mode auto-only: {large} as requested"
    assert raw.headers["x-spendgate-cost-usd"] == raw.headers["x-spendgate-baseline-usd"]


# --- capability and context filters ------------------------------------------------

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]
SMALL_WINDOW = 2000


@pytest.fixture(scope="module")
def upstreams() -> dict[str, str]:
    uid = tag()
    return {"deepseek-reasoner": f"dsr-{uid}", "gpt-4o-mini": f"mini-{uid}"}


@pytest.fixture(scope="module")
def capable(
    sims: tuple[Simulator, Simulator],
    tmp_path_factory: pytest.TempPathFactory,
    upstreams: dict[str, str],
) -> Iterator[Proxy]:
    """deepseek-reasoner (no tools, a small window, cheapest) and gpt-4o-mini, one tier."""
    s1, s2 = sims
    workdir = tmp_path_factory.mktemp("capabilities")
    config = {
        "providers": {
            "p1": {"type": "openai", "base_url": s1.openai_base_url, "api_key": SIM_KEY},
            "p2": {"type": "openai", "base_url": s2.openai_base_url, "api_key": SIM_KEY},
        },
        "models": [
            {
                "name": "deepseek-reasoner",
                "provider": "p1",
                "upstream": upstreams["deepseek-reasoner"],
                "tier": "large",
                "price": {"input": "0.01", "output": "0.01"},
                "context_window": SMALL_WINDOW,
            },
            {
                "name": "gpt-4o-mini",
                "provider": "p2",
                "upstream": upstreams["gpt-4o-mini"],
                "tier": "large",
            },
        ],
        "routing": {"mode": "auto-only", "retry_base_s": 0.01, "breaker_failures": 1000},
        "cache": {"enabled": False},
        "ledger": {"url": ledger_url(workdir)},
    }
    proxy = start_proxy(config, workdir, kind=Proxy, name="capabilities")
    try:
        yield proxy
    finally:
        proxy.stop()


def ask_open(proxy: Proxy, text: str, **extra: Any) -> Any:
    with openai.OpenAI(
        base_url=proxy.openai_base_url, api_key="any", max_retries=0, timeout=30
    ) as client:
        return client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}], **extra
        )


def test_a_plain_request_goes_to_the_cheapest_model(
    capable: Proxy, s1: Simulator, upstreams: dict[str, str]
) -> None:
    raw = ask_open(capable, "Name a colour.")

    assert raw.headers["x-spendgate-model"] == "deepseek-reasoner"
    assert s1.calls(upstreams["deepseek-reasoner"]) == 1


def test_a_request_with_tools_goes_only_to_a_model_that_supports_tools(
    capable: Proxy, s1: Simulator, s2: Simulator, upstreams: dict[str, str]
) -> None:
    raw = ask_open(capable, "Name a colour.", tools=TOOLS)

    assert raw.headers["x-spendgate-model"] == "gpt-4o-mini"
    assert raw.headers["x-spendgate-provider"] == "p2"
    assert s1.calls(upstreams["deepseek-reasoner"]) == 0
    assert s2.calls(upstreams["gpt-4o-mini"]) == 1


def test_a_prompt_beyond_a_context_window_goes_to_a_model_with_a_larger_one(
    capable: Proxy, s1: Simulator, s2: Simulator, upstreams: dict[str, str]
) -> None:
    huge = "Summarise the following notes. " + " ".join(
        f"Note {i}: the meeting moved to room {i % 17}." for i in range(600)
    )

    raw = ask_open(capable, huge)

    assert raw.parse().usage.prompt_tokens > SMALL_WINDOW
    assert raw.headers["x-spendgate-model"] == "gpt-4o-mini"
    assert s1.calls(upstreams["deepseek-reasoner"]) == 0
    assert s2.calls(upstreams["gpt-4o-mini"]) == 1


def test_auto_with_no_model_of_a_high_enough_tier_says_why(
    launch: Launch, s1: Simulator, tmp_path: Path
) -> None:
    """Only a small model is configured and the prompt needs more: the 400 must say so."""
    needed = least_tier(HARD)
    assert needed != "small", "the scorer gives the hard prompt the small tier: nothing to test"
    config = {
        "providers": {"p1": {"type": "openai", "base_url": s1.openai_base_url, "api_key": SIM_KEY}},
        "models": [{"name": f"only-small-{tag()}", "provider": "p1", "tier": "small"}],
        "cache": {"enabled": False},
        "ledger": {"url": ledger_url(tmp_path)},
    }
    proxy = launch(config)

    with pytest.raises(openai.BadRequestError) as caught:
        ask_open(proxy, HARD)

    message = caught.value.message
    assert "no tiered models" not in message, message
    assert needed in message, message
