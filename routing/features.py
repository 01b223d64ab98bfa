"""Request features for complexity scoring: a chat body -> a fixed vector of numbers.

Every feature is scaled to roughly [0, 1] so that learned weights are
comparable and the reasons picked from them make sense. Extraction is pure
and cheap: the last user turn is scanned through a bounded window (head and
tail), earlier turns only contribute their lengths and a few substring
checks, and keyword matching goes through word sets rather than regexes.

Layout: the base features; one indicator per domain of a fixed gate
(``domain_of``: math, code, or neither = chat); then, per domain, a copy of
each non-shared base feature that is zero outside the domain. A linear model
over it weighs a feature by its shared weight plus its domain's offset, which
lets length or code mean "hard" for math and code prompts while chat prompts
(where long given-text tasks are the easy ones) learn their own slope.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from types import MappingProxyType
from typing import Any


def _split(text: str) -> list[str]:
    return text.split()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BASE_FEATURE_NAMES: tuple[str, ...] = tuple(
    _split(
        """
    last_len history_len depth code_fence code_words stack_trace math_latex math_words
    equations analytical constraints output_size tools_offered tool_results structured
    non_english simple_task open_ended grounded given_share instruction_len wh_first
    question_mark transform hard_ask first_person creative code_chars tech_words
    how_why_first variables numbers
    """
    )
)
# Features whose effect does not depend on the kind of task (and mostly cannot be
# learned from single-turn development data); every other base feature also gets
# a per-domain copy so math and code prompts can weigh it differently from chat.
SHARED_FEATURES: frozenset[str] = _words(
    "history_len depth tools_offered tool_results stack_trace non_english output_size "
    "code_fence structured"
)
DOMAINS: tuple[str, ...] = ("math", "code")
_PER_DOMAIN: tuple[str, ...] = tuple(n for n in BASE_FEATURE_NAMES if n not in SHARED_FEATURES)
FEATURE_NAMES: tuple[str, ...] = (
    *BASE_FEATURE_NAMES,
    *(f"is_{d}" for d in DOMAINS),
    *(f"{d}:{n}" for d in DOMAINS for n in _PER_DOMAIN),
)

# Phrases for reasons: (feature above its typical value, feature below it). Domain
# copies have none of their own: their push is named by their base feature.
FEATURE_PHRASES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "last_len": ("long prompt", "short"),
        "history_len": ("long history", "no history"),
        "depth": ("many turns", "single turn"),
        "code_fence": ("code block", "no code block"),
        "code_words": ("code", "no code"),
        "stack_trace": ("stack trace", "no stack trace"),
        "math_latex": ("math notation", "no math notation"),
        "math_words": ("math", "no math"),
        "equations": ("equations", "no equations"),
        "analytical": ("multi-step analysis", "no analysis asked"),
        "constraints": ("many constraints", "few constraints"),
        "output_size": ("long output", "short output"),
        "tools_offered": ("tools", "no tools"),
        "tool_results": ("tool results", "no tool results"),
        "structured": ("structured output", "free-form output"),
        "non_english": ("non-English", "English"),
        "simple_task": ("simple task", "not a simple task"),
        "open_ended": ("open-ended", "closed question"),
        "grounded": ("works on given text", "no given text"),
        "given_share": ("mostly given material", "little given material"),
        "instruction_len": ("long instruction", "short instruction"),
        "wh_first": ("what/who question", "not a what/who question"),
        "question_mark": ("a question", "not a question"),
        "transform": ("transforms given text", "no text transformation"),
        "hard_ask": ("design/prove/optimize ask", "no design/prove/optimize ask"),
        "first_person": ("personal context", "no personal context"),
        "creative": ("writing/ideas ask", "no writing/ideas ask"),
        "code_chars": ("code syntax", "no code syntax"),
        "tech_words": ("technical terms", "few technical terms"),
        "how_why_first": ("how/why question", "not a how/why question"),
        "variables": ("single-letter variables", "no variables"),
        "numbers": ("many numbers", "few numbers"),
        "is_math": ("math problem", "not a math problem"),
        "is_code": ("code task", "not a code task"),
    }
)

# Bounds of the scanned window of the last user turn; longer turns count by length only.
SCAN_HEAD_CHARS = 3000
SCAN_TAIL_CHARS = 1000

_LAST_LEN_SCALE = math.log1p(16_000)
_HISTORY_LEN_SCALE = math.log1p(64_000)
_OUTPUT_SCALE = math.log1p(8_000)


_CODE_WORDS = _words(
    "def class return import function const let var void int public private static "
    "async await lambda struct fn impl #include printf console.log select from where "
    "join sql python javascript typescript java c++ rust golang bash regex api json "
    "html css react docker kubernetes compile compiler bug debug script code "
    "implement algorithm dataframe pandas numpy"
)
_MATH_WORDS = _words(
    "prove proof derive derivation theorem lemma integral integrate derivative "
    "equation equations polynomial probability matrix eigenvalue vector compute "
    "evaluate simplify solve factor real integers integer prime modulo remainder sum "
    "digits radius triangle circle"
)
_ANALYTICAL_WORDS = _words(
    "compare contrast design architect architecture analyze analyse evaluate assess "
    "critique optimize optimise trade-offs tradeoffs tradeoff justify plan strategy "
    "implement refactor debug investigate reason why explain"
)
_ANALYTICAL_PHRASES = (
    "step by step",
    "step-by-step",
    "pros and cons",
    "trade-off",
    "in detail",
    "walk me through",
    "think through",
)
_CONSTRAINT_WORDS = _words(
    "must should exactly only without ensure avoid never always include limit "
    "maximum minimum require required requirements"
)
_CONSTRAINT_PHRASES = ("do not", "don't", "at least", "at most", "no more than", "make sure")
_SIMPLE_WORDS = _words(
    "rewrite rephrase paraphrase translate summarize summarise synonym synonyms "
    "antonym list name names suggest joke poem slogan title tweet hi hello thanks "
    "define definition correct grammar classify categorize"
)
# Open questions invite long, expert answers where strong models pull ahead.
_OPEN_ENDED_WORDS = _words(
    "how why explain explanation ideas tips advice best recommend describe discuss "
    "essay story blog post article opinion think tell"
)
# Tasks that transform text supplied in the prompt; the answer is largely determined by it.
_GROUNDED_WORDS = _words(
    "given following provided text sentence paragraph passage extract table based "
    "input output example examples"
)
# Asks that turn supplied text into other text; the input pins the answer down.
_TRANSFORM_WORDS = _words(
    "rewrite rephrase paraphrase translate summarize summarise classify categorize "
    "extract convert correct change expand shorten edit fix identify detect label tag "
    "rate sort format proofread reword replace"
)
_HARD_ASK_WORDS = _words(
    "design prove optimize optimise debug implement architect architecture derive "
    "refactor scalable efficient efficiently complexity performance concurrency "
    "distributed algorithm proof optimal"
)
_FIRST_PERSON_WORDS = _words("i my me i'm i've we our us i'd")
_CREATIVE_WORDS = _words(
    "write create generate compose draft story poem essay ideas tips advice recipe "
    "plan describe imagine pretend brainstorm"
)
_TECH_WORDS = _words(
    "file files data database function functions code python model models user users "
    "app server network path sql script program value values input output return run "
    "running system test key format multiple id step implement build using api query "
    "table column columns string list array object class memory cpu gpu linux windows "
    "excel vba docker git aws cloud framework library package module install error bug "
    "version config configuration deploy browser website web http url json csv pandas "
    "numpy matrix algorithm dataset training neural llm gpt token tokens performance"
)
_WH_WORDS = _words("what who where when which whom whose")
_HOW_WHY_WORDS = _words("how why can could should would is are do does")
_CODE_CHARS = "{};=()<>[]_"
# Where the instruction ends and supplied material (a passage, a list, code) begins.
_MATERIAL_MARKS = ("\n\n", ":\n", "```", '"')
_INSTRUCTION_SCALE = math.log1p(2000)
# code_chars is ten times the share of code punctuation, so 0.3 means 3% of the text.
_CODE_CHARS_SHARE = 0.3
_STRUCTURED_WORDS = frozenset(["json", "yaml", "csv", "xml", "table", "schema", "markdown"])

_WORD_RE = re.compile(r"[a-z0-9#+\-.']+")
_DIGITS = frozenset("0123456789")
# One-letter words other than the articles / pronoun "a" and "i": names of quantities.
_VARIABLE_WORDS = frozenset("bcdefghjklmnopqrstuvwxyz")
_LATEX_RE = re.compile(r"\$[^$]{1,200}\$|\\(?:frac|sqrt|sum|int|cdot|le|ge|pi|theta|binom|left)")
_EQUATION_RE = re.compile(r"[0-9a-z)]\s*[=<>^]\s*[-0-9a-z(]")
_STACK_RE = re.compile(
    r"traceback \(most recent call last\)|exception in thread|\n\s+at [\w.$]+\(|error: |panicked at"
)
_SIZE_RE = re.compile(
    r"\b(\d{2,5})\s*(?:-\s*\d+\s*)?(words|tokens|pages|paragraphs|lines|sentences)"
)
_SIZE_UNIT_TOKENS = {
    "words": 1.4,
    "tokens": 1.0,
    "pages": 700.0,
    "paragraphs": 120.0,
    "lines": 15.0,
    "sentences": 25.0,
}


@dataclass(frozen=True, slots=True)
class ConversationText:
    """The parts of a chat body the features look at."""

    last_user: str
    history_chars: int
    user_turns: int
    tool_messages: int
    history_has_code: bool


def content_text(content: Any) -> str:
    """The text of one message's ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
        return "\n".join(texts)
    return ""


def messages_of(body: Mapping[str, Any]) -> Sequence[Any]:
    """The message list of a chat body (``messages``, or ``prompt`` as in the data sets)."""
    messages = body.get("messages")
    if messages is None:
        messages = body.get("prompt")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return messages
    return ()


def split_conversation(messages: Sequence[Any]) -> ConversationText:
    """Separate the last user turn from the history it follows."""
    last_index = -1
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, Mapping) and msg.get("role") == "user":
            last_index = i
            break
    history_chars = 0
    user_turns = 0
    tool_messages = 0
    history_has_code = False
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role")
        user_turns += role == "user"
        tool_messages += role in ("tool", "function")
        if i == last_index:
            continue
        text = content_text(msg.get("content"))
        history_chars += len(text)
        history_has_code = history_has_code or "```" in text
    last = content_text(messages[last_index].get("content")) if last_index >= 0 else ""
    return ConversationText(last, history_chars, user_turns, tool_messages, history_has_code)


def _scan_window(text: str) -> str:
    if len(text) <= SCAN_HEAD_CHARS + SCAN_TAIL_CHARS:
        return text.lower()
    return (text[:SCAN_HEAD_CHARS] + "\n" + text[-SCAN_TAIL_CHARS:]).lower()


def _capped(count: int, cap: int) -> float:
    return min(count, cap) / cap


def _requested_output_tokens(body: Mapping[str, Any], scan: str) -> float:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return float(value)
    match = _SIZE_RE.search(scan)
    if match is None:
        return 0.0
    return float(match.group(1)) * _SIZE_UNIT_TOKENS[match.group(2)]


def _structured(body: Mapping[str, Any], words: frozenset[str]) -> float:
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        return 1.0
    return 1.0 if words & _STRUCTURED_WORDS else 0.0


def _non_english(scan: str) -> float:
    if scan.isascii():
        return 0.0
    non_ascii = sum(1 for ch in scan if ord(ch) > 127 and ch.isalpha())
    letters = sum(1 for ch in scan if ch.isalpha()) or 1
    return min(1.0, 2.0 * non_ascii / letters)


def _equations(scan: str) -> int:
    # The regex is the slowest step; most prompts have no comparison sign at all.
    if not any(sign in scan for sign in "=<>^"):
        return 0
    return len(_EQUATION_RE.findall(scan))


def _instruction_end(text: str) -> int:
    cut = len(text)
    for mark in _MATERIAL_MARKS:
        i = text.find(mark, 0, cut + len(mark) - 1)
        if i >= 0:
            cut = i
    return cut


def _phrasing(
    text: str, scan: str, word_list: Sequence[str], words: frozenset[str]
) -> tuple[float, ...]:
    """How the request is put: instruction vs supplied material, question form, kind of ask.

    The features from ``given_share`` on, in ``BASE_FEATURE_NAMES`` order.
    """
    cut = _instruction_end(text)
    first = word_list[0] if word_list else ""
    first_person = sum(map(_FIRST_PERSON_WORDS.__contains__, word_list))
    numbers = sum(map(_DIGITS.__contains__, map(itemgetter(0), word_list)))
    variables = sum(map(_VARIABLE_WORDS.__contains__, word_list))
    code_chars = sum(scan.count(ch) for ch in _CODE_CHARS) / max(1, len(scan))
    return (
        (len(text) - cut) / len(text) if text else 0.0,
        min(1.0, math.log1p(cut) / _INSTRUCTION_SCALE),
        1.0 if first in _WH_WORDS else 0.0,
        1.0 if text.rstrip().endswith("?") else 0.0,
        _capped(len(words & _TRANSFORM_WORDS), 2),
        _capped(len(words & _HARD_ASK_WORDS), 3),
        _capped(first_person, 6),
        _capped(len(words & _CREATIVE_WORDS), 2),
        min(1.0, code_chars * 10),
        _capped(len(words & _TECH_WORDS), 6),
        1.0 if first in _HOW_WHY_WORDS else 0.0,
        _capped(variables, 4),
        _capped(numbers, 8),
    )


def base_features(body: Mapping[str, Any]) -> tuple[float, ...]:
    """The domain-independent feature vector of a chat body, in ``BASE_FEATURE_NAMES`` order."""
    conv = split_conversation(messages_of(body))
    scan = _scan_window(conv.last_user)
    word_list = _WORD_RE.findall(scan)
    words = frozenset(word_list)
    analytical = len(words & _ANALYTICAL_WORDS) + sum(p in scan for p in _ANALYTICAL_PHRASES)
    constraints = (
        len(words & _CONSTRAINT_WORDS)
        + sum(p in scan for p in _CONSTRAINT_PHRASES)
        + scan.count("\n- ")
        + scan.count("\n* ")
    )
    tools = body.get("tools") or body.get("functions")
    output_tokens = _requested_output_tokens(body, scan)
    return (
        min(1.0, math.log1p(len(conv.last_user)) / _LAST_LEN_SCALE),
        min(1.0, math.log1p(conv.history_chars) / _HISTORY_LEN_SCALE),
        _capped(max(0, conv.user_turns - 1), 10),
        1.0 if "```" in scan or conv.history_has_code else 0.0,
        _capped(len(words & _CODE_WORDS) + scan.count("();") + scan.count("{\n"), 6),
        1.0 if _STACK_RE.search(scan) else 0.0,
        _capped(len(_LATEX_RE.findall(scan)), 8),
        _capped(len(words & _MATH_WORDS), 4),
        _capped(_equations(scan), 6),
        _capped(analytical, 4),
        _capped(constraints, 6),
        min(1.0, math.log1p(output_tokens) / _OUTPUT_SCALE),
        1.0 if tools else 0.0,
        _capped(conv.tool_messages, 4),
        _structured(body, words),
        _non_english(scan),
        _capped(len(words & _SIMPLE_WORDS), 2),
        _capped(len(words & _OPEN_ENDED_WORDS), 3),
        _capped(len(words & _GROUNDED_WORDS), 3),
        *_phrasing(conv.last_user, scan, word_list, words),
    )


_BASE_INDEX: Mapping[str, int] = MappingProxyType({n: i for i, n in enumerate(BASE_FEATURE_NAMES)})
# Position in BASE_FEATURE_NAMES of each per-domain copy (same order in every domain).
PER_DOMAIN_BASE_INDEX: tuple[int, ...] = tuple(_BASE_INDEX[n] for n in _PER_DOMAIN)


def domain_of(base: Sequence[float]) -> str | None:
    """The fixed gate: "math", "code", or None for general chat.

    Math: any LaTeX, three or more equations, two or more math words, or a
    word problem (two or more numbers with a math word or a question mark).
    Code (when not math): a code fence, three or more code words, or code
    punctuation making up at least 3% of the scanned text.
    """

    def count(name: str, cap: int) -> int:
        return round(base[_BASE_INDEX[name]] * cap)

    math_words = count("math_words", 4)
    if (
        count("math_latex", 8) > 0
        or count("equations", 6) >= 3
        or math_words >= 2
        or (count("numbers", 8) >= 2 and (math_words >= 1 or count("question_mark", 1) > 0))
    ):
        return "math"
    if (
        count("code_fence", 1) > 0
        or count("code_words", 6) >= 3
        or base[_BASE_INDEX["code_chars"]] >= _CODE_CHARS_SHARE
    ):
        return "code"
    return None


def extract(body: Mapping[str, Any]) -> tuple[float, ...]:
    """The feature vector of a chat body, in ``FEATURE_NAMES`` order.

    The base features, then one indicator per domain, then for each domain a
    copy of the per-domain base features that is zero outside that domain.
    A linear model over this vector is a mixture with a fixed gate: general
    weights plus, inside a domain, that domain's offsets.
    """
    base = base_features(body)
    domain = domain_of(base)
    parts = [*base, *(1.0 if d == domain else 0.0 for d in DOMAINS)]
    for d in DOMAINS:
        parts.extend(base[i] if d == domain else 0.0 for i in PER_DOMAIN_BASE_INDEX)
    return tuple(parts)
