"""Word lists the guard compares turns by (English)."""

from __future__ import annotations

from typing import Final


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CARDINALS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS: Final = {word: str(value) for value, word in enumerate(_CARDINALS.split())} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "dozen": "12",
    "half": "0.5",
}
"""Number words and the digits they mean, so "three" equals "3"."""

_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth"
ORDINAL_WORDS: Final = {word: f"#{i}" for i, word in enumerate(_ORDINALS.split(), start=1)}
"""Ordinals, kept apart from cardinals: "first" equals "1st", not "one"."""

CALENDAR_WORDS: Final = _words(
    "january february march april june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday "
    "friday saturday sunday today tomorrow yesterday tonight"
)
"""Months, weekdays and relative days ("may" is left out: it is mostly a verb)."""

NEGATIONS: Final = _words(
    "not no never none nobody nothing nowhere neither nor without except unless cannot "
    "non barely hardly dont doesnt didnt isnt arent wasnt werent cant couldnt shouldnt "
    "wouldnt wont hasnt havent hadnt aint mustnt neednt shant"
)
"""Negation cues, with apostrophes already removed ("didn't" is "didnt")."""

COMPARATIVES: Final = _words(
    "more less fewer greater larger bigger smaller higher lower before after above below "
    "over under most least best worst max maximum min minimum faster slower older younger "
    "cheaper"
)

STOPWORDS: Final = _words(
    "a an the and or but if then so of at by for with about into through during to from "
    "up down in out on off again further once here there all any both each few other some "
    "such own same too very s t just now it its what which this that these those am is are "
    "was were be been being have has had having do does did doing also really actually "
    "please ever someone something anyone anything thing things way ways get got as while"
)
"""Function words only: pronouns and modal verbs stay content, since "Should I
tell him" and "Can I tell her" ask different things."""

CONTRACTIONS: Final = {
    "whats": "what",
    "thats": "that",
    "theres": "there",
    "heres": "here",
    "hows": "how",
    "whos": "who",
    "wheres": "where",
    "whens": "when",
    "whys": "why",
    "lets": "let",
    "hes": "he",
    "shes": "she",
    "youre": "you",
    "youve": "you",
    "youll": "you",
    "youd": "you",
    "im": "i",
    "ive": "i",
    "theyre": "they",
    "theyve": "they",
    "weve": "we",
}
"""Apostrophe-less contractions and the word they stand for in content comparison."""
