"""The semantic cache in the pipeline: near-duplicates hit, different facts never do."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from proxy.errors import ConfigError
from proxy.server.assembly import shared_text_embedder
from routing.embedding import EmbedderUnavailableError, TextEmbedder
from tests.proxy.support import Recorder, completion, make_settings, proxy_client

pytestmark = pytest.mark.anyio


def _ask(text: str) -> dict[str, object]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }


async def test_paraphrase_hits_and_a_different_number_misses() -> None:
    settings = make_settings(cache={"semantic": {"enabled": True}})
    recorder = Recorder(httpx.Response(200, json=completion("Paris.")))
    async with proxy_client(recorder, settings) as client:
        first = await client.post(
            "/v1/chat/completions", json=_ask("What is the capital of France?")
        )
        near = await client.post(
            "/v1/chat/completions", json=_ask("what is the capital of  France")
        )
        other = await client.post(
            "/v1/chat/completions", json=_ask("What is the capital of Germany?")
        )
        number = await client.post("/v1/chat/completions", json=_ask("Is 7 a prime number?"))
        number2 = await client.post("/v1/chat/completions", json=_ask("Is 9 a prime number?"))
    assert first.headers["x-spendgate-cache"] == "miss"
    assert near.headers["x-spendgate-cache"] == "semantic"
    assert 0.9 <= float(near.headers["x-spendgate-cache-similarity"]) <= 1.0
    assert near.json()["choices"][0]["message"]["content"] == "Paris."
    assert near.headers["x-spendgate-cost-usd"] == "0.000000"  # the local embedder costs nothing
    assert other.headers["x-spendgate-cache"] == "miss"
    assert (
        number.headers["x-spendgate-cache"] == "miss"
        and number2.headers["x-spendgate-cache"] == "miss"
    )
    assert len(recorder.requests) == 4


async def test_semantic_never_crosses_tenants_or_system_prompts() -> None:
    settings = make_settings(
        cache={"semantic": {"enabled": True}},
        auth={"keys": [{"key": "ka", "tenant": "a"}, {"key": "kb", "tenant": "b"}]},
    )
    recorder = Recorder(httpx.Response(200, json=completion("Paris.")))
    async with proxy_client(recorder, settings) as client:
        await client.post(
            "/v1/chat/completions",
            json=_ask("What is the capital of France?"),
            headers={"authorization": "Bearer ka"},
        )
        other_tenant = await client.post(
            "/v1/chat/completions",
            json=_ask("what is the capital of france"),
            headers={"authorization": "Bearer kb"},
        )
        body = _ask("what is the capital of france")
        body["messages"][0]["content"] = "Answer at length."  # type: ignore[index]
        other_system = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer ka"}
        )
    assert other_tenant.headers["x-spendgate-cache"] == "miss"
    assert other_system.headers["x-spendgate-cache"] == "miss"


@pytest.fixture
def model_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts loads of the text embedding model (each still loads the real one)."""
    loads: list[int] = []
    real_load = TextEmbedder.load

    def counting_load() -> TextEmbedder:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(TextEmbedder, "load", counting_load)
    yield loads


async def test_the_model_is_not_loaded_when_the_semantic_cache_and_routing_are_off(
    model_loads: list[int],
) -> None:
    recorder = Recorder(httpx.Response(200, json=completion("Paris.")))
    async with proxy_client(recorder, make_settings(routing={"mode": "off"})) as client:
        answer = await client.post(
            "/v1/chat/completions", json=_ask("What is the capital of France?")
        )
    assert answer.status_code == 200
    assert answer.headers["x-spendgate-cache"] == "miss"
    assert model_loads == []


async def test_the_model_is_loaded_once_for_the_semantic_cache_and_routing(
    model_loads: list[int],
) -> None:
    # make_settings routes model "auto" (tiered models, mode auto-only): both use one model.
    settings = make_settings(cache={"semantic": {"enabled": True}})
    recorder = Recorder(httpx.Response(200, json=completion("It varies.")))
    async with proxy_client(recorder, settings) as client:
        for text in (
            "How do I reset my router password?",
            "How can I reset the password of my router?",
        ):
            answer = await client.post("/v1/chat/completions", json=_ask(text))
    assert answer.headers["x-spendgate-cache"] == "semantic"
    assert model_loads == [1]


@pytest.mark.parametrize(
    ("cache", "for_routing", "loaded"),
    [
        ({}, False, False),
        ({"semantic": {"enabled": True, "embedder": "hash"}}, False, False),
        ({"semantic": {"enabled": True}}, False, True),
        ({"semantic": {"enabled": True, "embedder": "wordllama"}}, False, True),
        ({}, True, True),
    ],
    ids=["off", "hash", "default", "wordllama", "routing-only"],
)
async def test_shared_text_embedder_loads_only_for_a_user(
    model_loads: list[int], cache: dict[str, object], for_routing: bool, loaded: bool
) -> None:
    model = await shared_text_embedder(make_settings(cache=cache), for_routing=for_routing)
    assert (model is not None) is loaded
    assert model_loads == ([1] if loaded else [])


async def test_a_missing_model_is_a_start_up_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> TextEmbedder:
        raise EmbedderUnavailableError("the wordllama package is not installed")

    monkeypatch.setattr(TextEmbedder, "load", missing)
    with pytest.raises(ConfigError, match="wordllama package is not installed"):
        await shared_text_embedder(make_settings(cache={"semantic": {"enabled": True}}))
