"""Request features for complexity scoring: a chat body -> a fixed vector of numbers.

Every feature is scaled to roughly [0, 1] so that learned weights are
comparable and the reasons picked from them make sense. Extraction is pure
and cheap: the last user turn is scanned through a bounded window (head and
tail), earlier turns only contribute their lengths and a few substring
checks, and keyword matching goes through word sets rather than regexes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FEATURE_NAMES: tuple[str, ...] = (
    "last_len",
    "history_len",
    "depth",
    "code_fence",
    "code_words",
    "stack_trace",
    "math_latex",
    "math_words",
    "equations",
    "analytical",
    "constraints",
    "output_size",
    "tools_offered",
    "tool_results",
    "structured",
    "non_english",
    "simple_task",
    "open_ended",
    "grounded",
)

# Phrases for reasons: (feature above its typical value, feature below it).
FEATURE_PHRASES: Mapping[str, tuple[str, str]] = {
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
}

# Bounds of the scanned window of the last user turn; longer turns count by length only.
SCAN_HEAD_CHARS = 3000
SCAN_TAIL_CHARS = 1000

_LAST_LEN_SCALE = math.log1p(16_000)
_HISTORY_LEN_SCALE = math.log1p(64_000)
_OUTPUT_SCALE = math.log1p(8_000)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


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
_STRUCTURED_WORDS = frozenset(["json", "yaml", "csv", "xml", "table", "schema", "markdown"])

_WORD_RE = re.compile(r"[a-z0-9#+\-.']+")
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


def extract(body: Mapping[str, Any]) -> tuple[float, ...]:
    """The feature vector of a chat body, in ``FEATURE_NAMES`` order."""
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
        _capped(len(_EQUATION_RE.findall(scan)), 6),
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
    )
