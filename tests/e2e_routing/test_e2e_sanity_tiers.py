"""Requests anyone would tier the same way reach that tier, through the real server.

A proxy with a small and a large model (on two simulated providers) and the
default quality target receives each request of ``sanity_prompts`` as
``model: "auto"`` from the official openai SDK; the served model must be the
expected tier's. Two more proxies show the ``routing.quality_target`` knob at
work: the same proof goes large at the default 0.95 and small at 0.80.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e_routing.harness import SIM_KEY, Proxy, ledger_url, tag
from tests.e2e_routing.sanity_prompts import LARGE, SMALL
from tests.support.servers import Simulator, start_proxy

pytestmark = pytest.mark.e2e


def two_tier_config(
    sims: tuple[Simulator, Simulator], workdir: Path, names: dict[str, str], **routing: Any
) -> dict[str, Any]:
    s1, s2 = sims
    return {
        "providers": {
            "p1": {"type": "openai", "base_url": s1.openai_base_url, "api_key": SIM_KEY},
            "p2": {"type": "openai", "base_url": s2.openai_base_url, "api_key": SIM_KEY},
        },
        "models": [
            {
                "name": names["small"],
                "provider": "p1",
                "tier": "small",
                "price": {"input": "0.15", "output": "0.60"},
            },
            {
                "name": names["large"],
                "provider": "p2",
                "tier": "large",
                "price": {"input": "2.50", "output": "10.00"},
            },
        ],
        "routing": {"mode": "auto-only", **routing},
        "cache": {"enabled": False},
        "ledger": {"url": ledger_url(workdir)},
    }


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    uid = tag()
    return {"small": f"small-{uid}", "large": f"large-{uid}"}


@pytest.fixture(scope="module")
def proxy(
    sims: tuple[Simulator, Simulator],
    tmp_path_factory: pytest.TempPathFactory,
    names: dict[str, str],
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("sanity")
    served = start_proxy(two_tier_config(sims, workdir, names), workdir, kind=Proxy, name="sanity")
    try:
        yield served
    finally:
        served.stop()


def served_model(proxy: Proxy, body: dict[str, Any]) -> tuple[str, str]:
    """The model that served ``body`` as ``model: auto``, and the route reason."""
    client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", **body)
    completion = raw.parse()
    assert completion.choices, "an answer"
    return raw.headers["x-spendgate-model"], raw.headers["x-spendgate-route-reason"]


def _label(body: dict[str, Any]) -> str:
    last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
    return str(last["content"])[:40]


@pytest.mark.parametrize("body", SMALL, ids=[_label(b) for b in SMALL])
def test_easy_requests_go_to_the_small_tier(
    proxy: Proxy, names: dict[str, str], body: dict[str, Any]
) -> None:
    model, reason = served_model(proxy, body)
    assert model == names["small"], reason


@pytest.mark.parametrize("body", LARGE, ids=[_label(b) for b in LARGE])
def test_hard_requests_go_to_the_large_tier(
    proxy: Proxy, names: dict[str, str], body: dict[str, Any]
) -> None:
    model, reason = served_model(proxy, body)
    assert model == names["large"], reason
    assert reason.isascii() and 'like "' in reason


def test_the_quality_target_moves_the_thresholds(
    sims: tuple[Simulator, Simulator], tmp_path: Path, names: dict[str, str]
) -> None:
    proof = LARGE[0]
    served = {}
    for target in (0.8, 0.95):
        workdir = tmp_path / str(target)
        workdir.mkdir()
        config = two_tier_config(sims, workdir, names, quality_target=target)
        proxy = start_proxy(config, workdir, kind=Proxy, name=f"knob-{target}")
        try:
            served[target] = served_model(proxy, proof)[0]
        finally:
            proxy.stop()
    assert served == {0.8: names["small"], 0.95: names["large"]}
