"""Edited pairs with a known answer, built from the report half's positive pairs.

Known wrong (any hit is a false hit): a number changed (``n`` to ``n+1``),
else a capitalised name replaced, else ``not`` inserted after the first
auxiliary verb (``number`` / ``name`` / ``negation``); and, separately, one
content word replaced by a content word of another pair (``word``), which no
guard check catches. Set ``copy`` pairs a text with its own edit (the
hardest case: everything else is identical); set ``pair`` pairs text_a with
the edited text_b.

Known right (``dup``): a text against a rewrite of itself that asks the same
thing: lower-cased without sentence punctuation, extra whitespace, two
letters swapped in a long word.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from bench.semcache_pairs import Pair
from cache.semantic.guard_words import STOPWORDS

Case = tuple[str, str, str, str]
"""(set, edit kind, text, edited text)."""

_AUX = re.compile(
    r"\b(is|are|was|were|do|does|did|can|could|should|would|will|has|have)\b", re.IGNORECASE
)
_DIGITS = re.compile(r"\d+")
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]+\b")
_NEG = re.compile(r"\b(not|no|never|without)\b|n't", re.IGNORECASE)
_LONG_WORD = re.compile(r"\b[a-z]{7,}\b")
_CONTENT = re.compile(r"\b[a-z]{4,}\b")


def mutate(text: str) -> tuple[str, str] | None:
    """``text`` with one answer-changing edit the guard checks for, and its kind."""
    if m := _DIGITS.search(text):
        return text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :], "number"
    if m := _NAME.search(text):
        other = "Germany" if m.group() != "Germany" else "Brazil"
        return text[: m.start()] + other + text[m.end() :], "name"
    if _NEG.search(text) is None and (m := _AUX.search(text)):
        return text[: m.end()] + " not" + text[m.end() :], "negation"
    return None


def _content_spans(text: str) -> list[re.Match[str]]:
    return [m for m in _CONTENT.finditer(text) if m.group() not in STOPWORDS]


def swap_word(text: str, donors: Sequence[str]) -> str | None:
    """``text`` with its last lower-case content word replaced by another text's.

    The replacement is picked from ``donors`` by a hash of ``text``, so the
    set is the same on every run; None when there is nothing to swap.
    """
    spans = _content_spans(text)
    if not spans or not donors:
        return None
    target = spans[-1]
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    for step in range(8):
        candidates = _content_spans(donors[(seed + step) % len(donors)])
        words = [m.group() for m in candidates if m.group() != target.group()]
        if words:
            word = words[seed % len(words)]
            if word not in text.lower():
                return text[: target.start()] + word + text[target.end() :]
    return None


def near_duplicates(text: str) -> list[tuple[str, str]]:
    """Rewrites of ``text`` that ask the same thing, each with its kind."""
    out = [
        (re.sub(r"[?.!,;:]", "", text).lower(), "case+punct"),
        ("  ".join(text.split()) + " ", "whitespace"),
    ]
    if m := _LONG_WORD.search(text):
        w = m.group()
        out.append((text[: m.start()] + w[:3] + w[4] + w[3] + w[5:] + text[m.end() :], "typo"))
    return [(t, kind) for t, kind in out if t != text]


def adversarial_pairs(pairs: Iterable[Pair]) -> list[Case]:
    """Every edited pair built from ``pairs`` (their positive pairs only)."""
    positives = [p for p in pairs if p.label == 1]
    donors = [p.b for p in positives]
    out: list[Case] = []
    for p in positives:
        out.extend(("dup", kind, p.a, text) for text, kind in near_duplicates(p.a))
        for kind, base, other in (("copy", p.a, p.a), ("pair", p.a, p.b)):
            mutated = mutate(other)
            if mutated is not None and mutated[0] != base:
                out.append((kind, mutated[1], base, mutated[0]))
        swapped = swap_word(p.a, donors)
        if swapped is not None:
            out.append(("copy", "word", p.a, swapped))
    return out
