"""Embedders by spec: the provider embedder over a mocked transport, config errors."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from decimal import Decimal

import httpx
import pytest

from cache.semantic.embedders import (
    EmbedCall,
    Embedder,
    ProviderEmbedder,
    SentenceTransformersEmbedder,
    build_embedder,
)
from cache.semantic.hash_embedder import HashEmbedder
from cache.semantic.index import MemoryIndex
from cache.semantic.service import SemanticCache
from pricing.cost import UnitPrices, cost_micro
from pricing.usage import Usage
from proxy.errors import ConfigError, UpstreamStatusError

pytestmark = pytest.mark.anyio

PRICES = UnitPrices(Decimal("0.02"), Decimal("0"), Decimal("0.02"), Decimal("0.02"))
DIM = 4


def vector_for(text: str) -> list[float]:
    """A fake model: texts that agree ignoring case share a (non-unit) vector."""
    folded = text.casefold().strip(" ?")
    return [float(len(folded)), float(folded.count("e")), 1.0, 3.0 if "paris" in folded else 0.5]


class FakeEmbeddingsAPI:
    """An OpenAI-style /v1/embeddings endpoint behind httpx.MockTransport."""

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[dict[str, object]] = []
        self.fail = fail

    def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.requests.append(payload)
        if self.fail:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        data = [
            {"object": "embedding", "index": i, "embedding": vector_for(text)}
            for i, text in enumerate(payload["input"])
        ]
        tokens = sum(len(text.split()) for text in payload["input"]) * 100
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def embed_call_over(client: httpx.AsyncClient) -> EmbedCall:
    async def embed_call(model: str, texts: list[str]) -> tuple[Sequence[Sequence[float]], Usage]:
        response = await client.post("/v1/embeddings", json={"model": model, "input": texts})
        if response.status_code != 200:
            raise UpstreamStatusError(
                "embeddings failed", provider="fake", upstream_status=response.status_code
            )
        answer = response.json()
        vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda d: d["index"])]
        return vectors, Usage(prompt_tokens=answer["usage"]["prompt_tokens"])

    return embed_call


def cost_of(model: str, usage: Usage) -> int:
    assert model == "text-embedding-3-small"
    return cost_micro(usage, PRICES)


async def test_provider_embedder_calls_the_endpoint_and_reports_its_cost() -> None:
    api = FakeEmbeddingsAPI()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(api), base_url="http://up"
    ) as client:
        embedder = build_embedder(
            "provider:text-embedding-3-small",
            embed_call=embed_call_over(client),
            cost_of=cost_of,
            provider_dim=DIM,
        )
        assert isinstance(embedder, ProviderEmbedder)
        assert embedder.name == "provider:text-embedding-3-small"
        vectors = await embedder.embed(["Hello there", "Paris"])
    assert api.requests == [{"model": "text-embedding-3-small", "input": ["Hello there", "Paris"]}]
    assert len(vectors) == 2
    for vector in vectors:
        assert sum(v * v for v in vector) == pytest.approx(1.0)
    # 300 tokens at $0.02 per 1M tokens = 6 micro-dollars
    assert embedder.overhead_micro == 6
    assert embedder.last_usage == Usage(prompt_tokens=300)


async def test_semantic_hit_through_the_provider_embedder_carries_its_overhead() -> None:
    api = FakeEmbeddingsAPI()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(api), base_url="http://up"
    ) as client:
        embedder = ProviderEmbedder(
            "text-embedding-3-small", embed_call=embed_call_over(client), cost_of=cost_of, dim=DIM
        )
        cache = SemanticCache(embedder, MemoryIndex(10))
        stored = {"model": "m", "messages": [{"role": "user", "content": "Where is Paris?"}]}
        asked = {"model": "m", "messages": [{"role": "user", "content": "where is paris"}]}
        await cache.add(stored, namespace="t", model="m", exact_key="ex:paris")
        match = await cache.lookup(asked, namespace="t", model="m")
    assert match is not None
    assert match.exact_key == "ex:paris"
    assert match.overhead_micro == 6  # "where is paris": 3 words, 300 tokens
    assert len(api.requests) == 2


async def test_provider_failure_is_a_miss_not_an_error() -> None:
    api = FakeEmbeddingsAPI(fail=True)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(api), base_url="http://up"
    ) as client:
        embedder = ProviderEmbedder(
            "text-embedding-3-small", embed_call=embed_call_over(client), cost_of=cost_of, dim=DIM
        )
        cache = SemanticCache(embedder, MemoryIndex(10))
        request = {"model": "m", "messages": [{"role": "user", "content": "Where is Paris?"}]}
        assert await cache.lookup(request, namespace="t", model="m", threshold=0.0) is None
        assert await cache.add(request, namespace="t", model="m", exact_key="ex:1") == 0
    assert len(api.requests) == 2


async def test_provider_answer_of_the_wrong_shape_is_rejected() -> None:
    async def short(model: str, texts: list[str]) -> tuple[Sequence[Sequence[float]], Usage]:
        return [[1.0, 0.0]], Usage(prompt_tokens=1)

    embedder = ProviderEmbedder("e", embed_call=short, cost_of=lambda m, u: 0, dim=DIM)
    with pytest.raises(ValueError, match="expected dimension 4"):
        await embedder.embed(["a"])


def test_build_embedder_specs() -> None:
    hashed = build_embedder("hash")
    assert isinstance(hashed, HashEmbedder)
    assert isinstance(hashed, Embedder)
    with pytest.raises(ConfigError, match="unknown embedder"):
        build_embedder("word2vec")
    with pytest.raises(ConfigError, match="needs an upstream embeddings client"):
        build_embedder("provider:text-embedding-3-small")


def test_sentence_transformers_without_the_package_is_a_config_error() -> None:
    if importlib.util.find_spec("sentence_transformers") is not None:
        pytest.skip("sentence-transformers is installed here")
    with pytest.raises(ConfigError, match="'sentence-transformers' package"):
        SentenceTransformersEmbedder("all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="not installed"):
        build_embedder("sentence-transformers:all-MiniLM-L6-v2")
