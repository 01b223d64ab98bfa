"""Guard against confident wrong hits: two turns must agree on the details.

A lexical or semantic embedding scores "Is 7 prime?" and "Is 9 prime?" close
to 1.0, yet the answers differ. Before a semantic hit is served, both turns
must agree on:

* numbers: digits (thousands separators and trailing decimal zeros dropped),
  number words zero..twenty and the tens, ordinals, month and weekday names;
* negation: how many negation cues each has (not, no, never, n't, without,
  except, ...);
* quoted strings: each quoted span of one turn occurs in the other's text;
* names: each token capitalised other than at a sentence start (or containing
  a capital after its first letter, such as ``iPhone`` or ``CLRS``) occurs,
  case-insensitively, among the other turn's words, so "france" still
  matches "France" but "Java" never matches "Python";
* comparisons: the same comparison operators and comparative words;
* symbols: the same non-punctuation symbols (``#``, ``+``, ``$``, ``%``, ...),
  which text normalisation drops but which tell ``C#`` from ``C++``.

With ``GuardPolicy(content_words=True)`` both turns must also use the same
content words (everything but function words, compared after light stemming,
with one-letter typos in words of five or more letters forgiven). That is the
right policy for a lexical embedding, whose high similarity says "nearly the
same characters", not "same meaning": one swapped noun ("car" for "phone")
leaves the cosine above 0.9 but changes the question. It is wrong for a model
embedding, whose purpose is to match paraphrases with different words.

All checks are symmetric, so ``check(a, b) == check(b, a)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from cache.semantic.guard_words import (
    CALENDAR_WORDS,
    COMPARATIVES,
    CONTRACTIONS,
    NEGATIONS,
    NUMBER_WORDS,
    ORDINAL_WORDS,
    STOPWORDS,
)
from cache.semantic.hash_embedder import normalise_text

_WORD = re.compile("\\w+(?:['\u2019]\\w+)*", re.UNICODE)
_APOSTROPHES = str.maketrans("", "", "'\u2019")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
_ORDINAL_SUFFIX = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_SENTENCE_END = frozenset('.!?:;\n"\u201c\u201d()[]')
_QUOTED = re.compile(
    '"([^"]+)"|\u201c([^\u201d]+)\u201d|\u2018([^\u2019]+)\u2019|`([^`]+)`'
    "|\u00ab([^\u00bb]+)\u00bb|(?<!\\w)'([^']+)'(?!\\w)"
)
_SYMBOL_COMPARISON = re.compile(r">=|<=|!=|==|≥|≤|≠|(?<![-=<])>|<(?![-=])")
_SYMBOLS = re.compile(r"[#+@$%&*/=^~|\\€£¥§°]")


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """Whether a semantic hit may be served, and if not, which check failed."""

    allowed: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """Which checks the guard runs beyond the always-on ones."""

    content_words: bool = False


@dataclass(frozen=True, slots=True)
class TurnFacts:
    """The details of one turn that a cached answer must agree on."""

    numbers: tuple[str, ...]  # sorted, with repeats: "two ... 2 to 3" is not "3 to 3"
    negations: int
    quotes: frozenset[str]
    names: frozenset[str]
    comparisons: frozenset[str]
    words: frozenset[str]
    symbols: frozenset[str]
    content: tuple[str, ...]
    normal: str


ALLOWED: Final = GuardVerdict(True)


def lowered_words(text: str) -> list[str]:
    """The words of ``text``, case-folded, apostrophes dropped ("Didn't" is "didnt")."""
    return [m.group().casefold().translate(_APOSTROPHES) for m in _WORD.finditer(text)]


def turn_facts(text: str) -> TurnFacts:
    """Extract the details of ``text`` that the guard compares."""
    tokens = [(m.group(), m.start()) for m in _WORD.finditer(text)]
    lowered = [token.casefold().translate(_APOSTROPHES) for token, _ in tokens]
    return TurnFacts(
        numbers=_numbers(text, lowered),
        negations=_negation_count(lowered),
        quotes=frozenset(
            normalise_text(next(g for g in m.groups() if g is not None))
            for m in _QUOTED.finditer(text)
        )
        - {""},
        names=_names(text, tokens),
        comparisons=frozenset(m.group() for m in _SYMBOL_COMPARISON.finditer(text))
        | frozenset(w for w in lowered if w in COMPARATIVES),
        words=frozenset(lowered),
        symbols=frozenset(_SYMBOLS.findall(text)),
        content=content_words(lowered),
        normal=normalise_text(text),
    )


def check(a: str, b: str, *, policy: GuardPolicy = GuardPolicy()) -> GuardVerdict:
    """Whether turns ``a`` and ``b`` agree on every detail the guard compares."""
    return check_facts(turn_facts(a), turn_facts(b), policy=policy)


def guard_allows(a: str, b: str, *, policy: GuardPolicy = GuardPolicy()) -> bool:
    """Whether a semantic hit between turns ``a`` and ``b`` may be served."""
    return check(a, b, policy=policy).allowed


def check_facts(
    fa: TurnFacts, fb: TurnFacts, *, policy: GuardPolicy = GuardPolicy()
) -> GuardVerdict:
    """:func:`check` on facts extracted beforehand (each side extracted once)."""
    if fa.numbers != fb.numbers:
        return GuardVerdict(False, "numbers")
    if fa.negations != fb.negations:
        return GuardVerdict(False, "negation")
    if not _quotes_agree(fa, fb) or not _quotes_agree(fb, fa):
        return GuardVerdict(False, "quoted")
    if not fa.names <= fb.words or not fb.names <= fa.words:
        return GuardVerdict(False, "names")
    if fa.comparisons != fb.comparisons:
        return GuardVerdict(False, "comparison")
    if fa.symbols != fb.symbols:
        return GuardVerdict(False, "symbols")
    if policy.content_words and not _same_content(fa.content, fb.content):
        return GuardVerdict(False, "content_words")
    return ALLOWED


def near_duplicate(fa: TurnFacts, fb: TurnFacts) -> bool:
    """Whether two turns differ only in case, whitespace and punctuation.

    Typos are not forgiven here: one letter turns "prevent" into "present"
    and "affect" into "effect".
    """
    return fa.normal == fb.normal


def _same_content(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return len(a) == len(b) and all(
        x == y or stem(x) == stem(y) or _one_typo_apart(x, y) for x, y in zip(a, b, strict=True)
    )


def _one_typo_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` (six letters or more) differ by one substituted letter.

    Insertions and deletions are not forgiven: they turn "place" into "palace"
    and "theist" into "atheist".
    """
    if len(a) != len(b) or len(a) < 6:
        return False
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return len(diffs) == 1 or (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and a[diffs[0]] == b[diffs[1]]
        and a[diffs[1]] == b[diffs[0]]
    )


def content_words(lowered: list[str]) -> tuple[str, ...]:
    """Content words in order (order matters: "life after death")."""
    # negations and numbers have their own checks
    words = (CONTRACTIONS.get(w, w) for w in lowered)
    return tuple(
        w
        for w in words
        if w not in STOPWORDS and w not in NEGATIONS and w not in NUMBER_WORDS and not w.isdigit()
    )


def stem(word: str) -> str:
    """A light English stem: plural, common verb endings and a final "e" dropped."""
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _quotes_agree(fa: TurnFacts, fb: TurnFacts) -> bool:
    padded = f" {fb.normal} "
    return all(f" {quote} " in padded for quote in fa.quotes)


def _numbers(text: str, lowered: list[str]) -> tuple[str, ...]:
    found: list[str] = [_canonical_number(m.group()) for m in _NUMBER.finditer(text)]
    for word in lowered:
        ordinal = _ORDINAL_SUFFIX.match(word)
        if ordinal:
            value = _canonical_number(ordinal.group(1))
            if value in found:  # "1st" was also read as the number 1
                found.remove(value)
            found.append(f"#{value}")
        elif word in NUMBER_WORDS:
            found.append(NUMBER_WORDS[word])
        elif word in ORDINAL_WORDS:
            found.append(ORDINAL_WORDS[word])
        elif word in CALENDAR_WORDS:
            found.append(word[:3])
    return tuple(sorted(found))


def _canonical_number(raw: str) -> str:
    if _THOUSANDS.match(raw):
        return raw.replace(",", "")
    if raw.count(".") == 1 and "," not in raw:
        whole, _, fraction = raw.partition(".")
        fraction = fraction.rstrip("0")
        return f"{whole.lstrip('0') or '0'}.{fraction}" if fraction else whole.lstrip("0") or "0"
    return raw.lstrip("0") or "0" if raw.isdigit() else raw


def _negation_count(lowered: list[str]) -> int:
    return sum(1 for w in lowered if w in NEGATIONS)


def _after_sentence_end(text: str, start: int) -> bool:
    """Whether the last non-blank character before ``start`` ends a sentence."""
    i = start - 1
    while i >= 0 and text[i] in " \t\r":
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def _names(text: str, tokens: list[tuple[str, int]]) -> frozenset[str]:
    names: set[str] = set()
    for index, (token, start) in enumerate(tokens):
        if token == "I" or not any(c.isupper() for c in token):
            continue
        inner_capital = any(c.isupper() for c in token[1:])
        at_start = index == 0 or _after_sentence_end(text, start)
        if inner_capital or not at_start:
            names.add(token.casefold().translate(_APOSTROPHES))
    return frozenset(names)
