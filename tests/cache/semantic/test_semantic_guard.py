"""The guard: near-identical turns that differ in a detail never share an answer."""

from __future__ import annotations

import pytest

from cache.semantic.guard import GuardPolicy, check, guard_allows

STRICT = GuardPolicy(content_words=True)


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Is 7 a prime number?", "Is 9 a prime number?", "numbers"),
        ("Convert 3.5 km to miles", "Convert 3.75 km to miles", "numbers"),
        ("List three uses of copper", "List four uses of copper", "numbers"),
        ("What happened on 2024-03-01?", "What happened on 2024-03-02?", "numbers"),
        ("Schedule it for Monday", "Schedule it for Tuesday", "numbers"),
        ("Who won the first round?", "Who won the second round?", "numbers"),
        ("Why can't I sleep at night?", "Why can I sleep at night?", "negation"),
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?", "negation"),
        ("Pack everything except the tent", "Pack everything and the tent", "negation"),
        ('Translate "good morning" to French', 'Translate "good night" to French', "quoted"),
        ("How do I learn Python quickly?", "How do I learn Java quickly?", "names"),
        ("Tell me about the history of Paris", "Tell me about the history of Rome", "names"),
        ("Is x > 5 here?", "Is x < 5 here?", "comparison"),
        ("Which is larger, a cat or a dog?", "Which is smaller, a cat or a dog?", "comparison"),
        ("Pros and cons of C++", "Pros and cons of C#", "symbols"),
    ],
)
def test_rejects_turns_that_differ_in_a_detail(a: str, b: str, reason: str) -> None:
    verdict = check(a, b)
    assert not verdict.allowed
    assert verdict.reason == reason
    assert check(b, a).reason == reason


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "what is the capital of france"),
        ("Give me 1,000 words on tea", "Give me 1000 words on tea"),
        ("It costs 3.50 dollars", "It costs 3.5 dollars"),
        ("Name three rivers in Spain", "Name 3 rivers in Spain"),
        ("Why didn't it compile?", "why didnt it compile"),
        ('Translate "good morning" to German', "translate good morning to german"),
        ("France: what is its capital?", "What is the capital of France?"),
    ],
)
def test_allows_turns_that_agree_on_every_detail(a: str, b: str) -> None:
    assert guard_allows(a, b)
    assert guard_allows(b, a)


def test_content_word_policy_rejects_a_swapped_noun() -> None:
    a = "What are some good messages to write when gifting a book to a friend?"
    b = "What are some good messages to write when gifting a phone to a friend?"
    assert guard_allows(a, b)
    verdict = check(a, b, policy=STRICT)
    assert (verdict.allowed, verdict.reason) == (False, "content_words")


@pytest.mark.parametrize(
    ("a", "b", "allowed"),
    [
        ("Do you believe in life after death?", "Do you believe in death after life?", False),
        ("Should I tell him?", "Should I tell her?", False),
        ("Is there a place to park?", "Is there a palace to park?", False),
        ("What are the best places to visit?", "what are the best place to visit", True),
        ("How does recursion work in practice?", "How does recursoin work in practice?", True),
        ("What's the best way to learn Rust?", "What is the best way to learn Rust?", True),
    ],
)
def test_content_word_policy(a: str, b: str, allowed: bool) -> None:
    assert check(a, b, policy=STRICT).allowed is allowed


def test_numbers_are_compared_with_their_repeats() -> None:
    a = "The two counties got 2 to 3 inches of rain"
    assert check(a, "The two counties got 3 to 3 inches of rain").reason == "numbers"
    assert guard_allows(a, "the two counties got 2 to 3 inches of rain.")


def test_ordinals_in_digits_and_words_agree() -> None:
    assert guard_allows("Who finished 1st and 02nd?", "Who finished first and second?")
    assert check("Who finished 1st?", "Who finished 2nd?").reason == "numbers"
