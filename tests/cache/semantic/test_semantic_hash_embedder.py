"""The built-in lexical embedder: deterministic, normalised, insensitive to form."""

from __future__ import annotations

import math

import pytest

from cache.semantic.hash_embedder import HashEmbedder, HashEmbedderConfig, normalise_text
from cache.semantic.vectors import dot, pack, unpack

pytestmark = pytest.mark.anyio

EMBEDDER = HashEmbedder()


def sim(a: str, b: str) -> float:
    return dot(EMBEDDER.embed_one(a), EMBEDDER.embed_one(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "what is the capital of france"),
        ("How do I reverse a list in Python?", "How  do I reverse a list in Python ?"),
        ("Explain recursion, briefly.", "EXPLAIN RECURSION BRIEFLY"),
        ("Summarise the meeting notes", "Summarise the meeting notes!!!"),
    ],
)
def test_case_whitespace_and_punctuation_do_not_matter(a: str, b: str) -> None:
    assert sim(a, b) == pytest.approx(1.0, abs=1e-9)


def test_small_edit_stays_close_and_unrelated_text_is_far() -> None:
    assert sim("How do I reverse a list in Python?", "How do I reverse a lsit in Python?") > 0.8
    assert sim("How do I reverse a list in Python?", "Best hiking trails near Denver") < 0.2


def test_vectors_are_unit_length_with_the_configured_dimension() -> None:
    vector = EMBEDDER.embed_one("Some text to embed")
    assert len(vector) == EMBEDDER.dim == 1024
    assert math.fsum(v * v for v in vector) == pytest.approx(1.0)


def test_empty_text_gives_the_zero_vector() -> None:
    assert not any(EMBEDDER.embed_one("?!"))


def test_embedding_is_the_same_in_every_instance() -> None:
    """Replicas must agree: no per-process salt (Python's str hash) may leak in."""
    other = HashEmbedder(HashEmbedderConfig())
    assert other.embed_one("Replica check") == EMBEDDER.embed_one("Replica check")


def test_dimension_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of 2"):
        HashEmbedder(HashEmbedderConfig(dim=1000))


async def test_embed_batches_and_costs_nothing() -> None:
    vectors = await EMBEDDER.embed(["one text", "another text"])
    assert vectors == [EMBEDDER.embed_one("one text"), EMBEDDER.embed_one("another text")]
    assert EMBEDDER.overhead_micro == 0


def test_normalise_text() -> None:
    assert normalise_text("  Hello,\tWORLD!  \uff46\uff55\uff4c\uff4c ") == "hello world full"


@pytest.mark.parametrize(
    "vector",
    [EMBEDDER.embed_one("pack me, sparsely"), [0.5, -0.5, 0.5, -0.5], [0.0] * 16],
    ids=["sparse", "dense", "zero"],
)
def test_packing_round_trips_within_float32_precision(vector: list[float]) -> None:
    assert unpack(pack(vector)) == pytest.approx(vector, abs=1e-7)


def test_sparse_packing_is_smaller_for_a_hashed_embedding() -> None:
    vector = EMBEDDER.embed_one("a short question")
    assert pack(vector)[:1] == b"S"
    assert len(pack(vector)) < 4 * len(vector) // 2


@pytest.mark.parametrize("data", [b"", b"X1234", b"S\x01\x00"])
def test_unpacking_garbage_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        unpack(data)
