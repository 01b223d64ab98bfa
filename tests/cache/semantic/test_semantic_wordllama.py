"""The ``wordllama`` embedder in the semantic cache: paraphrases hit, hard negatives do not.

Uses the real model from the installed wheel and the shipped reranker. Each
hard negative is also checked against the layer meant to stop it: the guard
(numbers, negation, names) or the reranker (a swapped word, a swapped order),
so a test cannot pass because a pair happened to score low on cosine alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from cache.semantic.embedders import build_embedder
from cache.semantic.guard import check
from cache.semantic.index import IndexEntry, MemoryIndex
from cache.semantic.redis_index import RedisIndex
from cache.semantic.rerank import Reranker
from cache.semantic.service import SemanticCache, default_threshold
from cache.semantic.turn_window import compared_part
from cache.semantic.vectors import dot
from cache.semantic.wordllama import WordLlamaEmbedder
from proxy.config import SemanticConfig
from routing.embedding import DIM, TextEmbedder

pytestmark = pytest.mark.anyio

NS = "tenant-a"
MODEL = "gpt-4o-mini"

PARAPHRASES = [
    ("How do I reset my router password?", "How can I reset the password of my router?"),
    ("Explain the difference between TCP and UDP.", "What is the difference between TCP and UDP?"),
    ("How do I learn to play the guitar?", "How can I learn to play guitar?"),
    ("How do I make my website load faster?", "How can I make my website load faster?"),
]
NEAR_DUPLICATES = [
    ("Why is the sky blue?", "why is the sky blue"),
    ("What is the capital of France?", "  What is the capital of   France  "),
]
GUARDED = [
    ("How many calories are in 2 eggs?", "How many calories are in 3 eggs?", "numbers"),
    ("Why is my code working?", "Why is my code not working?", "negation"),
    ("How do I read a file in Python?", "How do I read a file in Java?", "names"),
]
RERANKED = [
    ("Write a short poem about the ocean.", "Write a short poem about the desert."),
    ("Is Apple better than Samsung?", "Is Samsung better than Apple?"),
    ("How do I cook rice in a microwave?", "How do I cook pasta in a microwave?"),
    (
        "Summarize the plot of Hamlet in three sentences.",
        "Summarize the plot of Hamlet in three paragraphs.",
    ),
]


def body(question: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": question},
        ],
    }


def new_cache(text_embedder: TextEmbedder, **options: Any) -> SemanticCache:
    return SemanticCache(WordLlamaEmbedder(text_embedder), MemoryIndex(1000), **options)


async def stored_then_asked(cache: SemanticCache, stored: str, asked: str) -> str | None:
    await cache.add(body(stored), namespace=NS, model=MODEL, exact_key="ex:stored")
    match = await cache.lookup(body(asked), namespace=NS, model=MODEL)
    return match.exact_key if match else None


def test_wordllama_is_the_default_embedder_of_the_config() -> None:
    assert SemanticConfig().embedder == "wordllama"
    assert SemanticConfig(enabled=True).embedder == "wordllama"


async def test_spec_builds_an_embedder_over_the_injected_model(
    text_embedder: TextEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_second_model() -> TextEmbedder:
        raise AssertionError("the embedder loaded a model of its own")

    monkeypatch.setattr(TextEmbedder, "load", no_second_model)
    embedder = build_embedder("wordllama", text_embedder=text_embedder)
    assert isinstance(embedder, WordLlamaEmbedder)
    assert embedder.model is text_embedder
    assert (embedder.name, embedder.dim, embedder.overhead_micro) == ("wordllama", DIM, 0)
    [vector] = await embedder.embed(["What is the capital of France?"])
    assert len(vector) == DIM
    assert dot(vector, vector) == pytest.approx(1.0, abs=1e-5)
    assert embedder.overhead_micro == 0


async def test_runs_of_whitespace_embed_like_single_spaces(text_embedder: TextEmbedder) -> None:
    embedder = WordLlamaEmbedder(text_embedder)
    one, spread = await embedder.embed(["How do I sort a list?", " How  do I\n sort a\tlist? "])
    assert one == spread


def test_the_reranker_shares_the_embedders_model(text_embedder: TextEmbedder) -> None:
    cache = new_cache(text_embedder)
    assert cache.threshold == default_threshold("wordllama")
    reranker = Reranker.for_embedder(text_embedder)
    query = reranker.prepare("How do I learn to play the guitar?")
    stored = reranker.prepare("How can I learn to play guitar?")
    assert reranker.score(query, stored, similarity=0.98) == reranker.score(
        stored, query, similarity=0.98
    )


@pytest.mark.parametrize(("stored", "asked"), PARAPHRASES)
async def test_paraphrase_hits(text_embedder: TextEmbedder, stored: str, asked: str) -> None:
    assert await stored_then_asked(new_cache(text_embedder), stored, asked) == "ex:stored"


@pytest.mark.parametrize(("stored", "asked"), NEAR_DUPLICATES)
async def test_case_punctuation_and_whitespace_rewrites_hit(
    text_embedder: TextEmbedder, stored: str, asked: str
) -> None:
    assert await stored_then_asked(new_cache(text_embedder), stored, asked) == "ex:stored"


@pytest.mark.parametrize(("stored", "asked", "reason"), GUARDED)
async def test_guard_stops_numbers_negation_and_names(
    text_embedder: TextEmbedder, stored: str, asked: str, reason: str
) -> None:
    assert check(stored, asked).reason == reason
    assert await stored_then_asked(new_cache(text_embedder), stored, asked) is None


@pytest.mark.parametrize(("stored", "asked"), RERANKED)
async def test_reranker_stops_a_swapped_word_or_order(
    text_embedder: TextEmbedder, stored: str, asked: str
) -> None:
    embedder = WordLlamaEmbedder(text_embedder)
    cosine = dot(embedder.embed_one(stored), embedder.embed_one(asked))
    assert cosine >= default_threshold("wordllama")  # the cosine alone would serve it
    assert check(stored, asked).allowed
    assert await stored_then_asked(new_cache(text_embedder), stored, asked) is None
    # ...and it is the reranker that says no:
    unranked = new_cache(text_embedder, rerank=False)
    assert await stored_then_asked(unranked, stored, asked) == "ex:stored"


def long_turn(question: str, *, middle_team: str = "blue") -> str:
    paragraphs = [f"Paragraph {i} of the report is about the budget." for i in range(80)]
    paragraphs[40] = f"Paragraph 40 of the report is about the {middle_team} team."
    return f"Read the report below and answer the question.\n\n{' '.join(paragraphs)}\n\n{question}"


async def test_long_turns_that_differ_in_the_middle_never_hit(
    text_embedder: TextEmbedder,
) -> None:
    question = "Question: which team is the report about?"
    stored, asked = long_turn(question), long_turn(question, middle_team="green")
    # What is embedded, guarded and reranked is the same for both...
    assert compared_part(stored) == compared_part(asked)
    assert stored != asked
    # ...so only the check of the text outside the window keeps this from hitting.
    assert await stored_then_asked(new_cache(text_embedder), stored, asked) is None


async def test_long_turns_with_a_reworded_ending_can_hit(text_embedder: TextEmbedder) -> None:
    stored = long_turn("How do I reset my router password?")
    asked = long_turn("How can I reset the password of my router?")
    assert await stored_then_asked(new_cache(text_embedder), stored, asked) == "ex:stored"


@pytest.mark.redis
async def test_redis_index_serves_wordllama_vectors(
    text_embedder: TextEmbedder, redis_client: Redis, redis_prefix: str
) -> None:
    embedder = WordLlamaEmbedder(text_embedder)
    index = RedisIndex(redis_client, prefix=redis_prefix, ttl_s=300, max_per_context=100)
    texts = [pair[0] for pair in PARAPHRASES] + [pair[0] for pair in RERANKED]
    for i, text in enumerate(texts):
        await index.add("ctx", IndexEntry(f"ex:{i}", text, embedder.embed_one(text)))
    query = embedder.embed_one(PARAPHRASES[0][1])
    found = await index.search("ctx", query, threshold=default_threshold("wordllama"), limit=5)
    assert found[0].exact_key == "ex:0"
    expected = dot(query, embedder.embed_one(texts[0]))
    assert found[0].similarity == pytest.approx(expected, abs=1e-5)  # stored as float32

    cache = SemanticCache(embedder, index)
    await cache.add(body(PARAPHRASES[1][0]), namespace=NS, model=MODEL, exact_key="ex:tcp")
    await cache.add(body(RERANKED[0][0]), namespace=NS, model=MODEL, exact_key="ex:ocean")
    hit = await cache.lookup(body(PARAPHRASES[1][1]), namespace=NS, model=MODEL)
    assert hit is not None and hit.exact_key == "ex:tcp"
    assert await cache.lookup(body(RERANKED[0][1]), namespace=NS, model=MODEL) is None
