"""The facade: context partitioning, thresholds, the guard, cost, reuse of the vector."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from cache.semantic.embedders import Embedder
from cache.semantic.guard import GuardPolicy
from cache.semantic.hash_embedder import HashEmbedder
from cache.semantic.index import MemoryIndex
from cache.semantic.redis_index import RedisIndex
from cache.semantic.service import SemanticCache, default_threshold
from cache.semantic.vectors import Vector

pytestmark = pytest.mark.anyio

NS = "tenant-a"
MODEL = "gpt-4o-mini"


def body(question: str, *, system: str = "You are terse.", history: int = 0) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for i in range(history):
        messages += [
            {"role": "user", "content": f"earlier question {i}"},
            {"role": "assistant", "content": f"earlier answer {i}"},
        ]
    messages.append({"role": "user", "content": question})
    return {"model": "alias-of-mini", "messages": messages, "temperature": 0}


def new_cache(**options: Any) -> SemanticCache:
    return SemanticCache(HashEmbedder(), MemoryIndex(1000), **options)


async def test_near_duplicate_in_the_same_context_hits() -> None:
    cache = new_cache()
    await cache.add(
        body("What is the capital of France?"), namespace=NS, model=MODEL, exact_key="ex:1"
    )
    match = await cache.lookup(body("what is the capital of france"), namespace=NS, model=MODEL)
    assert match is not None
    assert match.exact_key == "ex:1"
    assert match.similarity == pytest.approx(1.0)
    assert match.overhead_micro == 0


@pytest.mark.parametrize(
    ("changed", "namespace", "model"),
    [
        (body("What is the capital of France?", system="You are verbose."), NS, MODEL),
        (body("What is the capital of France?", history=1), NS, MODEL),
        (body("What is the capital of France?"), "tenant-b", MODEL),
        (body("What is the capital of France?"), NS, "gpt-4o"),
        ({**body("What is the capital of France?"), "temperature": 1}, NS, MODEL),
    ],
    ids=["system-prompt", "earlier-turn", "namespace", "model", "sampling"],
)
async def test_same_question_in_another_context_never_matches(
    changed: dict[str, Any], namespace: str, model: str
) -> None:
    cache = new_cache()
    await cache.add(
        body("What is the capital of France?"), namespace=NS, model=MODEL, exact_key="ex:1"
    )
    assert await cache.lookup(changed, namespace=namespace, model=model, threshold=0.0) is None
    assert await cache.lookup(body("What is the capital of France?"), namespace=NS, model=MODEL)


async def test_guard_rejects_a_changed_number_even_at_a_low_threshold() -> None:
    cache = new_cache()
    await cache.add(body("Is 7919 a prime number?"), namespace=NS, model=MODEL, exact_key="ex:1")
    query = body("Is 7917 a prime number?")
    assert await cache.lookup(query, namespace=NS, model=MODEL, threshold=0.5) is None
    unguarded = SemanticCache(HashEmbedder(), MemoryIndex(10), guard=False)
    await unguarded.add(
        body("Is 7919 a prime number?"), namespace=NS, model=MODEL, exact_key="ex:1"
    )
    match = await unguarded.lookup(query, namespace=NS, model=MODEL, threshold=0.5)
    assert match is not None and match.exact_key == "ex:1"


async def test_guard_skips_a_rejected_candidate_for_an_allowed_one() -> None:
    cache = new_cache(guard=GuardPolicy(content_words=False))
    await cache.add(
        body("Is 7 prime? Answer briefly."), namespace=NS, model=MODEL, exact_key="ex:7"
    )
    await cache.add(
        body("Is 9 prime?  Answer briefly"), namespace=NS, model=MODEL, exact_key="ex:9"
    )
    match = await cache.lookup(
        body("is 9 prime answer briefly"), namespace=NS, model=MODEL, threshold=0.5
    )
    assert match is not None and match.exact_key == "ex:9"


async def test_threshold_override_per_call() -> None:
    cache = new_cache(guard=False)
    await cache.add(
        body("How do I reverse a list in Python?"), namespace=NS, model=MODEL, exact_key="ex:1"
    )
    query = body("How can I reverse a Python list?")
    default = await cache.lookup(query, namespace=NS, model=MODEL)
    assert default is None
    loose = await cache.lookup(query, namespace=NS, model=MODEL, threshold=0.3)
    assert loose is not None and 0.3 <= loose.similarity < cache.threshold
    assert await cache.lookup(query, namespace=NS, model=MODEL, threshold=0.99) is None


def test_default_threshold_per_embedder() -> None:
    assert new_cache().threshold == default_threshold("hash")
    assert new_cache(threshold=0.97).threshold == 0.97
    assert default_threshold("provider:text-embedding-3-small") >= default_threshold("hash")


@pytest.mark.parametrize(
    "unusable",
    [
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        },
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ],
        },
        {"model": "m", "messages": [{"role": "user", "content": "   "}]},
        {"model": "m", "messages": [{"role": "user", "content": "x" * 9000}]},
    ],
    ids=["assistant-last", "no-text", "blank", "too-long"],
)
async def test_requests_without_a_usable_last_user_turn_are_skipped(
    unusable: dict[str, Any],
) -> None:
    cache = new_cache()
    await cache.add(unusable, namespace=NS, model=MODEL, exact_key="ex:1")
    assert await cache.lookup(unusable, namespace=NS, model=MODEL, threshold=0.0) is None


class CountingEmbedder:
    """Charges 7 micro-dollars per call, so reuse of a probe's vector is visible."""

    def __init__(self) -> None:
        self._inner: Embedder = HashEmbedder()
        self.name = "counting"
        self.dim = self._inner.dim
        self.overhead_micro = 0
        self.calls = 0

    async def embed(self, texts: list[str]) -> list[Vector]:
        self.calls += 1
        self.overhead_micro = 7 * len(texts)
        return await self._inner.embed(texts)


async def test_probe_reports_miss_cost_and_add_reuses_its_vector() -> None:
    embedder = CountingEmbedder()
    cache = SemanticCache(embedder, MemoryIndex(10), threshold=0.9)
    request = body("Summarise the plot of Hamlet")
    probe = await cache.probe(request, namespace=NS, model=MODEL)
    assert probe.match is None and probe.overhead_micro == 7
    assert await cache.add(request, namespace=NS, model=MODEL, exact_key="ex:h", probe=probe) == 0
    assert embedder.calls == 1
    match = await cache.lookup(body("summarise the plot of hamlet."), namespace=NS, model=MODEL)
    assert match is not None
    assert (match.exact_key, match.overhead_micro) == ("ex:h", 7)
    assert await cache.add(body("Another"), namespace=NS, model=MODEL, exact_key="ex:a") == 7


@pytest.mark.redis
async def test_replicas_share_entries_through_redis(redis_client: Redis, redis_prefix: str) -> None:
    other_client = Redis(host="127.0.0.1", port=6379)
    try:
        replicas = [
            SemanticCache(
                HashEmbedder(),
                RedisIndex(
                    client, prefix=redis_prefix, ttl_s=60, max_per_context=100, op_timeout_s=2
                ),
            )
            for client in (redis_client, other_client)
        ]
        stored = body("What is the capital of France?")
        await replicas[0].add(stored, namespace=NS, model=MODEL, exact_key="ex:fr")
        match = await replicas[1].lookup(
            body("what is the capital of France"), namespace=NS, model=MODEL
        )
        assert match is not None and match.exact_key == "ex:fr"
        assert (
            await replicas[1].lookup(
                body("What is the capital of Spain?"), namespace=NS, model=MODEL
            )
            is None
        )
        assert (
            await replicas[1].lookup(stored, namespace="tenant-b", model=MODEL, threshold=0.0)
            is None
        )
    finally:
        await other_client.aclose()
