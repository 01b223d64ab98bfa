"""Long turns: the compared window, and when two long turns may match at all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cache.semantic.turn_window import (
    WINDOW_HEAD,
    WINDOW_TAIL,
    common_prefix_length,
    common_suffix_length,
    compared_part,
    differ_only_in_windows,
)
from routing.features import window

BODY = "".join(f"line {i} of a long shared document\n" for i in range(200))  # ~6,600 chars


def naive_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@given(st.text(alphabet="ab", max_size=40), st.text(alphabet="ab", max_size=40))
def test_common_prefix_and_suffix_lengths(a: str, b: str) -> None:
    assert common_prefix_length(a, b) == naive_prefix(a, b)
    assert common_suffix_length(a, b) == naive_prefix(a[::-1], b[::-1])


@pytest.mark.parametrize("length", [0, 999, 1000, 1001, 5000])
def test_the_window_is_the_routers_window(length: int) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    assert compared_part(text) == window(text, head=WINDOW_HEAD, tail=WINDOW_TAIL)


def test_short_turns_are_compared_whole() -> None:
    text = "x" * (WINDOW_HEAD + WINDOW_TAIL)
    assert compared_part(text) == text
    assert differ_only_in_windows(text, "y" * 10)


def test_a_long_turn_is_compared_by_its_head_and_tail() -> None:
    text = "H" * WINDOW_HEAD + BODY + "T" * WINDOW_TAIL
    assert compared_part(text) == "H" * WINDOW_HEAD + "\n" + "T" * WINDOW_TAIL


@pytest.mark.parametrize(
    ("a", "b", "allowed"),
    [
        ("Intro.\n" + BODY + "Question: why?", "Intro.\n" + BODY + "Question: why?", True),
        ("Intro.\n" + BODY + "Question: why?", "Intro.\n" + BODY + "So, why is that?", True),
        ("Intro.\n" + BODY + "Q?", "Intro.\n" + BODY + "A much longer question here?", True),
        ("Please read:\n" + BODY + "Q?", "Kindly read this:\n" + BODY + "Q?", True),
        (
            "Intro.\n" + BODY + "Q?",
            "Intro.\n" + BODY.replace("line 100 ", "line 99 ") + "Q?",
            False,
        ),
        ("Please read:\n" + BODY + "Q?", "Kindly read:\n" + BODY + "Other question?", False),
        ("Intro.\n" + BODY + "Q?", "Intro.\n" + BODY[:3000] + "Q?", False),
    ],
    ids=["same", "tail", "longer-tail", "head", "middle", "head-and-tail", "middle-cut"],
)
def test_long_turns_may_differ_only_inside_the_windows(a: str, b: str, allowed: bool) -> None:
    assert differ_only_in_windows(a, b) is allowed
    assert differ_only_in_windows(b, a) is allowed
