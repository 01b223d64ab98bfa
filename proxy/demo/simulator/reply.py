"""What the simulated model answers: a pure function of the request.

Every dialect (chat completions, Responses, Anthropic Messages) asks the same
question of a request -- which text it answers, how many tokens it was sent,
whether it calls a tool -- so the answer is planned once here and each dialect
only dresses it in its own wire format. Everything is deterministic: the same
request always gets the same words and the same token counts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TOOL_TRIGGER = re.compile(r"\b(weather|forecast)\b", re.IGNORECASE)
_PLACE = re.compile(r"\b(?:in|for|at)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_DEFAULT_PLACE = "Paris"
_QUOTE_CHARS = 60
_TAIL = "This reply comes from the simulated provider."


class BadRequest(Exception):
    """The request is malformed; the simulator answers 400 with this message."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the simulated model decided to make."""

    call_id: str
    name: str
    arguments: str  # JSON text, as both OpenAI and Anthropic stream it


@dataclass(frozen=True, slots=True)
class AnswerIds:
    """What names an answer: the model it claims, its id and creation time."""

    model: str
    response_id: str
    created: int


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """The answer to one request, before any wire format is applied."""

    words: tuple[str, ...]
    truncated: bool
    prompt_tokens: int
    tool_call: ToolCall | None = None

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def completion_tokens(self) -> int:
        if self.tool_call is not None:
            return len(self.tool_call.arguments) // 4 + 1
        return len(self.words)

    def pieces(self) -> list[str]:
        """The text as streamed: one word per piece, spaces kept."""
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]


def text_of(content: Any) -> str:
    """The plain text of a message's content in any dialect.

    Content may be a string, or a list of parts: OpenAI ``text`` /
    ``input_text`` / ``output_text`` parts, Anthropic ``text`` blocks and
    ``tool_result`` blocks (whose own content nests the same way).
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "tool_result":
                texts.append(text_of(part.get("content")))
    return " ".join(t for t in texts if t)


def estimate_prompt_tokens(texts: Iterable[str]) -> int:
    """A deterministic stand-in for a tokenizer: four characters a token."""
    return sum(len(t) for t in texts) // 4 + 1


def reply_words(last_text: str) -> tuple[str, ...]:
    """The words answering ``last_text``."""
    quoted = " ".join(last_text.split())[:_QUOTE_CHARS] or "(empty)"
    return tuple(f"Simulated answer to: {quoted}. {_TAIL}".split())


def tool_arguments(last_text: str) -> str:
    """The JSON arguments of the simulated weather lookup."""
    match = _PLACE.search(last_text)
    place = match.group(1) if match else _DEFAULT_PLACE
    return json.dumps({"location": place, "unit": "celsius"}, separators=(",", ":"))


def call_id(prefix: str, seed: str) -> str:
    """A stable identifier derived from ``seed``."""
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


def plan_reply(
    *,
    last_text: str,
    all_texts: Iterable[str],
    max_tokens: int | None,
    tool_name: str | None,
    id_prefix: str,
) -> ReplyPlan:
    """Plan the answer.

    ``tool_name`` is the tool the model may call (``None`` when the request
    offers none, or forbids calling one); a call is made when the last user
    message mentions the weather. A text answer longer than ``max_tokens``
    words is cut to that many and marked truncated.
    """
    prompt_tokens = estimate_prompt_tokens(all_texts)
    if tool_name is not None and TOOL_TRIGGER.search(last_text):
        arguments = tool_arguments(last_text)
        call = ToolCall(call_id(id_prefix, tool_name + arguments), tool_name, arguments)
        return ReplyPlan((), False, prompt_tokens, call)
    words = reply_words(last_text)
    if max_tokens is not None and 0 <= max_tokens < len(words):
        return ReplyPlan(words[:max_tokens], True, prompt_tokens)
    return ReplyPlan(words, False, prompt_tokens)


def split_json(arguments: str, *, pieces: int = 3) -> list[str]:
    """Cut a JSON text into the partial pieces a provider streams."""
    size = max(1, -(-len(arguments) // pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def positive_int(value: Any) -> int | None:
    """``value`` when it is a non-negative integer (not a bool), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
