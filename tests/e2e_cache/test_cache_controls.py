"""Request controls and what may never be stored, seen from a real client.

``x-spendgate-cache: off`` skips lookup and store; ``refresh`` (and
``Cache-Control: no-cache`` or ``max-age=0``) skips the lookup and stores the
fresh answer; ``Cache-Control: no-store`` still reads
but never writes; a tenant with the cache off is always bypassed. Errors,
cut streams and answers cut by ``max_tokens`` are never served from cache.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.e2e_cache.answers import Frames
from tests.e2e_cache.harness import MODEL, Proxy, tagged
from tests.support.servers import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def ask(
    proxy: Proxy, body: dict[str, Any], *, headers: dict[str, str] | None = None, key: str = "k-a"
) -> tuple[str, str]:
    """(x-spendgate-cache, completion id) of one request, streamed or not."""
    with proxy.client(key) as client:
        raw = client.chat.completions.with_raw_response.create(**body, extra_headers=headers)
        parsed = raw.parse()
        if isinstance(parsed, openai.Stream):
            ids = {chunk.id for chunk in parsed}
            assert len(ids) == 1, ids
            return raw.headers["x-spendgate-cache"], ids.pop()
        return raw.headers["x-spendgate-cache"], parsed.id


def fresh_body(**extra: Any) -> dict[str, Any]:
    text = tagged("Say something short.")
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def test_off_neither_reads_nor_writes(proxy: Proxy, fresh_sim: Simulator) -> None:
    off = {"x-spendgate-cache": "off"}
    body = fresh_body()
    status, first = ask(proxy, body, headers=off)
    assert status == "bypass"
    assert ask(proxy, body)[0] == "miss", "an answer fetched with cache off was stored"
    _, stored = ask(proxy, body)
    status, bypassed = ask(proxy, body, headers=off)
    assert status == "bypass" and bypassed not in (first, stored)
    assert ask(proxy, body) == ("exact", stored), "cache off replaced the stored entry"
    assert fresh_sim.chat_calls() == 3


@pytest.mark.parametrize(
    "refresh",
    [
        {"x-spendgate-cache": "refresh"},
        {"Cache-Control": "no-cache"},
        {"Cache-Control": "max-age=0"},
    ],
    ids=["refresh", "no-cache", "max-age-0"],
)
def test_refresh_skips_the_lookup_and_stores(
    proxy: Proxy, fresh_sim: Simulator, refresh: dict[str, str]
) -> None:
    body = fresh_body()
    status, old = ask(proxy, body)
    assert status == "miss"
    status, new = ask(proxy, body, headers=refresh)
    assert status == "miss" and new != old
    assert ask(proxy, body) == ("exact", new)
    assert fresh_sim.chat_calls() == 2


def test_no_store_reads_but_never_writes(proxy: Proxy, fresh_sim: Simulator) -> None:
    no_store = {"Cache-Control": "no-store"}
    body = fresh_body()
    assert ask(proxy, body, headers=no_store)[0] == "miss"
    status, stored = ask(proxy, body)
    assert status == "miss", "an answer fetched with no-store was stored"
    assert ask(proxy, body, headers=no_store) == ("exact", stored)
    assert fresh_sim.chat_calls() == 2


def test_tenant_with_cache_disabled_is_bypassed(proxy: Proxy, fresh_sim: Simulator) -> None:
    body = fresh_body()
    assert ask(proxy, body, key="k-e")[0] == "bypass"
    assert ask(proxy, body, key="k-e")[0] == "bypass"
    assert fresh_sim.chat_calls() == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_error_is_never_cached(proxy: Proxy, fresh_sim: Simulator, stream: bool) -> None:
    body = fresh_body(stream=stream)
    fresh_sim.arm("500")
    with pytest.raises(openai.APIStatusError) as failed:
        ask(proxy, body)
    assert failed.value.status_code >= 500
    status, answered = ask(proxy, body)
    assert status == "miss"
    assert ask(proxy, body) == ("exact", answered)
    assert fresh_sim.chat_calls() == 2


def test_cut_stream_is_never_cached(proxy: Proxy, fresh_sim: Simulator) -> None:
    body = fresh_body(stream=True)
    fresh_sim.arm("cut_stream")
    response = httpx.post(
        f"{proxy.openai_base_url}/chat/completions",
        json=body,
        headers={"authorization": "Bearer k-a"},
        timeout=20.0,
    )
    frames = Frames.parse(response.text)
    assert not frames.done and "error" in frames.chunks[-1], response.text
    assert ask(proxy, {**body, "stream": False})[0] == "miss"
    assert fresh_sim.chat_calls() == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_answer_cut_by_max_tokens_is_not_cached(
    proxy: Proxy, fresh_sim: Simulator, stream: bool
) -> None:
    body = fresh_body(max_tokens=3, stream=stream)
    with proxy.client() as client:
        whole = client.chat.completions.create(**{**body, "stream": False})
    assert whole.choices[0].finish_reason == "length"
    assert ask(proxy, body)[0] == "miss"
    assert ask(proxy, body)[0] == "miss"
    assert fresh_sim.chat_calls() == 3
