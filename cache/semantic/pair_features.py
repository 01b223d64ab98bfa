"""What the reranker knows about a (query turn, stored turn) pair: 21 numbers.

A mean-pooled word embedding sees a bag of words: "Apple better than
Samsung" and "Samsung better than Apple" are the same vector, and "a gift
for my girlfriend" sits next to "a gift for my boyfriend". These features
look at what the cosine hides: which content words one turn has and the
other lacks and how far those are from the other turn's words, word order,
function words that change the question (who asks: "I" or "you"; when:
"is" or "was"; what: "what" or "why"), and the shape of the two texts.

Word vectors are WordLlama's (one ``TextEmbedder.embed`` of the word),
memoised per process, so a pair costs a few tens of microseconds once its
words have been seen. Each turn contributes at most ``MAX_CONTENT_WORDS``
content words, which bounds the work for long turns.
"""

from __future__ import annotations

import bisect
import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from cache.semantic.guard import content_words, lowered_words, stem
from routing.embedding import DIM, TextEmbedder, Vector

MAX_CONTENT_WORDS: Final = 48
DEFAULT_WORD_MEMORY: Final = 4096

_GROUPS: Final = (
    ("what why how who whom whose where when which"),
    ("i me my mine myself"),
    ("you your yours yourself yourselves"),
    ("we us our ours he him his she her they them their it its"),
    ("was were did had"),
    ("is are am do does has have"),
    ("can could should would will shall may might must"),
    ("a an the this that these those some any"),
)
_GROUP_SETS: Final = tuple(frozenset(words.split()) for words in _GROUPS)
_OPENERS: Final = _GROUP_SETS[0] | _GROUP_SETS[4] | _GROUP_SETS[5] | _GROUP_SETS[6]

FEATURE_NAMES: Final = (
    "cosine",
    "jaccard",
    "unmatched",
    "align_min",
    "align_mean",
    "order",
    "function_diff",
    "same_opener",
    "length_ratio",
    "residual_cosine",
    "unmatched_tokens",
    "shared",
    "content_cosine",
    "questions",
    "changed_question_word",
    "changed_first_person",
    "changed_second_person",
    "changed_other_person",
    "changed_past",
    "changed_present",
    "changed_modal",
    "changed_determiner",
)
"""Feature order, as the model file lists it."""


@dataclass(frozen=True, slots=True)
class TurnWords:
    """The words of one turn that the features compare, extracted once per turn."""

    lowered: tuple[str, ...]
    content: tuple[str, ...]
    stems: tuple[str, ...]
    question: bool
    opener: str | None


def turn_words(text: str) -> TurnWords:
    """Words, content words (at most ``MAX_CONTENT_WORDS``) and stems of ``text``."""
    lowered = tuple(lowered_words(text))
    content = content_words(list(lowered))[:MAX_CONTENT_WORDS]
    return TurnWords(
        lowered=lowered,
        content=content,
        stems=tuple(stem(word) for word in content),
        question=text.rstrip().endswith("?"),
        opener=next((word for word in lowered if word in _OPENERS), None),
    )


class WordVectors:
    """Unit vectors and token counts of single words, memoised (``max_words`` of them)."""

    def __init__(self, model: TextEmbedder, *, max_words: int = DEFAULT_WORD_MEMORY) -> None:
        self._model = model
        self.lookup = functools.lru_cache(maxsize=max_words)(self._compute)

    def _compute(self, word: str) -> tuple[Vector, int]:
        return self._model.embed(word), len(self._model.token_ids(word))

    def matrix(self, words: Sequence[str]) -> np.ndarray:
        """One row per word (``len(words)`` x ``DIM``)."""
        if not words:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self.lookup(word)[0] for word in words])

    def tokens(self, words: Sequence[str]) -> int:
        """How many model tokens ``words`` take: rare words split into several."""
        return sum(self.lookup(word)[1] for word in words)


def pair_features(
    a: TurnWords, b: TurnWords, *, similarity: float, vectors: WordVectors
) -> tuple[float, ...]:
    """The features of turns ``a`` and ``b`` at cosine ``similarity``, in ``FEATURE_NAMES`` order.

    Symmetric: swapping ``a`` and ``b`` gives the same numbers.
    """
    stems_a, stems_b = set(a.stems), set(b.stems)
    shared = stems_a & stems_b
    union = stems_a | stems_b
    lone_a = [s not in stems_b for s in a.stems]
    lone_b = [s not in stems_a for s in b.stems]
    only_a = [w for w, lone in zip(a.content, lone_a, strict=True) if lone]
    only_b = [w for w, lone in zip(b.content, lone_b, strict=True) if lone]
    rows_a, rows_b = vectors.matrix(a.content), vectors.matrix(b.content)
    odd_a, odd_b = rows_a[lone_a], rows_b[lone_b]
    align = _alignment(odd_a, rows_b) + _alignment(odd_b, rows_a)
    words_a, words_b = set(a.lowered), set(b.lowered)
    function_a, function_b = words_a - set(a.content), words_b - set(b.content)
    longest = max(len(a.lowered), len(b.lowered), 1)
    changed = [float((words_a & group) != (words_b & group)) for group in _GROUP_SETS]
    return (
        similarity,
        len(shared) / len(union) if union else 1.0,
        float(len(only_a) + len(only_b)),
        min(align, default=1.0),
        sum(align) / len(align) if align else 1.0,
        _order(a.stems, b.stems, shared),
        float(len(function_a ^ function_b)),
        float(a.opener == b.opener),
        min(len(a.lowered), len(b.lowered)) / longest,
        _residual(odd_a, odd_b),
        float(vectors.tokens(only_a) + vectors.tokens(only_b)),
        float(len(shared)),
        _mean_cosine(rows_a, rows_b),
        float(a.question) + float(b.question),
        *changed,
    )


def _alignment(words: np.ndarray, other: np.ndarray) -> list[float]:
    """For each row of ``words``, its best cosine with any row of ``other`` (0 if none)."""
    if not len(words):
        return []
    if not len(other):
        return [0.0] * len(words)
    best = (words @ other.T).max(axis=1)
    return [float(x) for x in best]


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) or not len(b):
        return 0.0
    # Cosine of the means: the sums point the same way and are cheaper.
    sa, sb = a.sum(axis=0), b.sum(axis=0)
    norm = float(np.sqrt((sa @ sa) * (sb @ sb)))
    return float(sa @ sb) / norm if norm > 0.0 else 0.0


def _residual(odd_a: np.ndarray, odd_b: np.ndarray) -> float:
    """Cosine of what each turn has that the other lacks: 1 when neither has anything."""
    if not len(odd_a) and not len(odd_b):
        return 1.0
    return _mean_cosine(odd_a, odd_b)


def _order(stems_a: Sequence[str], stems_b: Sequence[str], shared: set[str]) -> float:
    """Share of the words both use once that keep their relative order (1 = same order)."""
    count_a, count_b = Counter(stems_a), Counter(stems_b)
    position_b = {s: i for i, s in enumerate(stems_b) if count_b[s] == 1}
    sequence = [
        position_b[s] for s in stems_a if s in shared and count_a[s] == 1 and s in position_b
    ]
    if not sequence:
        return 1.0
    # Longest increasing subsequence: the words that did not move.
    tails: list[int] = []
    for value in sequence:
        i = bisect.bisect_left(tails, value)
        if i == len(tails):
            tails.append(value)
        else:
            tails[i] = value
    return len(tails) / len(sequence)
