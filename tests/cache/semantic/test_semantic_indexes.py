"""Memory and Redis indexes: search, partitions, bounds, TTL, replicas, Redis failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cache.semantic.hash_embedder import HashEmbedder
from cache.semantic.index import IndexEntry, MemoryIndex
from cache.semantic.redis_index import RedisIndex, vector_search_support
from routing.breaker import BreakerPolicy, BreakerState, CircuitBreaker

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379

pytestmark = pytest.mark.anyio

EMBED = HashEmbedder().embed_one
QUESTIONS = [
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "Explain the difference between TCP and UDP",
    "Write a haiku about autumn leaves",
    "What causes the seasons on Earth?",
]


def entry(i: int, text: str | None = None) -> IndexEntry:
    text = text if text is not None else QUESTIONS[i]
    return IndexEntry(f"ex:{i}", text, EMBED(text))


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_memory_index_finds_the_near_duplicate_only() -> None:
    index = MemoryIndex(100)
    for i in range(len(QUESTIONS)):
        await index.add("ctx", entry(i))
    found = await index.search("ctx", EMBED("what is the capital of france"), threshold=0.9)
    assert [c.exact_key for c in found] == ["ex:0"]
    assert found[0].text == QUESTIONS[0]
    assert found[0].similarity == pytest.approx(1.0)
    assert await index.search("ctx", EMBED("Tell me a joke"), threshold=0.9) == []


async def test_memory_index_searches_one_partition() -> None:
    index = MemoryIndex(100)
    await index.add("ctx-a", entry(0))
    assert await index.search("ctx-b", EMBED(QUESTIONS[0]), threshold=0.5) == []
    assert len(await index.search("ctx-a", EMBED(QUESTIONS[0]), threshold=0.5)) == 1


async def test_memory_index_prefilter_agrees_with_brute_force() -> None:
    fast, slow = MemoryIndex(100), MemoryIndex(100, prefilter=False)
    texts = [*QUESTIONS, "What is the capital of Spain?", "what's the capital of france?"]
    for i, text in enumerate(texts):
        await fast.add("ctx", entry(i, text))
        await slow.add("ctx", entry(i, text))
    query = EMBED("What is the capital of France")
    for threshold in (0.5, 0.7, 0.9):
        assert await fast.search("ctx", query, threshold=threshold) == await slow.search(
            "ctx", query, threshold=threshold
        )


async def test_memory_index_is_bounded_oldest_first() -> None:
    index = MemoryIndex(3)
    for i in range(len(QUESTIONS)):
        await index.add(f"ctx-{i % 2}", entry(i))
    assert len(index) == 3
    assert await index.search("ctx-0", EMBED(QUESTIONS[0]), threshold=0.9) == []
    assert len(await index.search("ctx-0", EMBED(QUESTIONS[4]), threshold=0.9)) == 1


async def test_memory_index_forgets_entries_after_ttl() -> None:
    clock = Clock()
    index = MemoryIndex(10, ttl_s=60, clock=clock)
    await index.add("ctx", entry(0))
    clock.now += 59
    assert len(await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9)) == 1
    clock.now += 2
    assert await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9) == []
    assert len(index) == 0


def redis_index(client: Redis, prefix: str, **overrides: object) -> RedisIndex:
    options: dict[str, object] = {"ttl_s": 300.0, "max_per_context": 100, "op_timeout_s": 2.0}
    options.update(overrides)
    return RedisIndex(client, prefix=prefix, **options)  # type: ignore[arg-type]


@pytest.fixture
async def second_client() -> AsyncIterator[Redis]:
    client = Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
    yield client
    await client.aclose()


@pytest.mark.redis
async def test_redis_entry_written_by_one_replica_is_found_by_another(
    redis_client: Redis, redis_prefix: str, second_client: Redis
) -> None:
    writer = redis_index(redis_client, redis_prefix)
    reader = redis_index(second_client, redis_prefix)
    for i in range(len(QUESTIONS)):
        await writer.add("ctx", entry(i))
    found = await reader.search("ctx", EMBED("WHAT is the capital of France"), threshold=0.9)
    assert [(c.exact_key, c.text) for c in found] == [("ex:0", QUESTIONS[0])]
    assert found[0].similarity == pytest.approx(1.0, abs=1e-6)
    assert await reader.search("other-ctx", EMBED(QUESTIONS[0]), threshold=0.5) == []


@pytest.mark.redis
async def test_redis_same_key_added_twice_is_returned_once(
    redis_client: Redis, redis_prefix: str
) -> None:
    index = redis_index(redis_client, redis_prefix)
    await index.add("ctx", entry(0))
    await index.add("ctx", entry(0, "What is the capital of France ?"))
    found = await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9)
    assert [c.exact_key for c in found] == ["ex:0"]


@pytest.mark.redis
async def test_redis_partition_is_capped_and_expires(
    redis_client: Redis, redis_prefix: str
) -> None:
    index = redis_index(redis_client, redis_prefix, max_per_context=3, ttl_s=120.0)
    for i in range(len(QUESTIONS)):
        await index.add("ctx", entry(i))
    entries_key, records_key = index.keys("ctx")
    assert await redis_client.hlen(entries_key) == 3
    assert await redis_client.strlen(records_key) == 3 * 52  # id, signature, time
    for key in (entries_key, records_key):
        assert 0 < await redis_client.pttl(key) <= 120_000
    assert await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9) == []
    assert len(await index.search("ctx", EMBED(QUESTIONS[4]), threshold=0.9)) == 1


@pytest.mark.redis
async def test_redis_entries_older_than_ttl_are_not_served(
    redis_client: Redis, redis_prefix: str
) -> None:
    clock = Clock(1_700_000_000.0)
    index = redis_index(redis_client, redis_prefix, ttl_s=60.0, clock=clock)
    await index.add("ctx", entry(0))
    clock.now += 30
    assert len(await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9)) == 1
    clock.now += 31
    assert await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9) == []


@pytest.mark.redis
async def test_redis_reports_no_server_side_vector_search_here(redis_client: Redis) -> None:
    support = await vector_search_support(redis_client)
    assert support.redis_version
    assert support.has_search_module == any(m.lower() == "search" for m in support.modules)
    if not support.redis_version.startswith("8"):
        assert not support.has_vector_sets


async def test_redis_down_is_a_miss_and_opens_the_breaker() -> None:
    # Nothing listens on port 1: every call fails at once with a connection error.
    client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2, open_s=60))
    index = RedisIndex(client, prefix="down", ttl_s=60, max_per_context=10, breaker=breaker)
    try:
        await index.add("ctx", entry(0))
        assert await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9) == []
        assert breaker.state is BreakerState.OPEN
        assert await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9) == []
    finally:
        await client.aclose()


async def test_redis_that_never_answers_times_out_to_a_miss() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis(host="127.0.0.1", port=port)
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=1, open_s=60))
    index = RedisIndex(
        client, prefix="mute", ttl_s=60, max_per_context=10, op_timeout_s=0.05, breaker=breaker
    )
    try:
        assert await index.search("ctx", EMBED(QUESTIONS[0]), threshold=0.9) == []
        assert breaker.state is BreakerState.OPEN
    finally:
        await client.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_redis_index_refuses_a_decoding_client() -> None:
    client = Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisIndex(client, prefix="x", ttl_s=60, max_per_context=10)
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_partition_never_exceeds_its_cap(
    redis_client: Redis, redis_prefix: str
) -> None:
    index = redis_index(redis_client, redis_prefix, max_per_context=32)
    for i in range(80):
        await index.add("ctx", entry(i, f"Question number {i} about topic {i * 7}"))
        entries_key, records_key = index.keys("ctx")
        held = await redis_client.hlen(entries_key)
        assert held <= 32
        assert await redis_client.strlen(records_key) == held * 52
    newest = await index.search("ctx", EMBED("Question number 79 about topic 553"), threshold=0.9)
    assert [c.exact_key for c in newest] == ["ex:79"]
    assert await index.search("ctx", EMBED("Question number 0 about topic 0"), threshold=0.9) == []
