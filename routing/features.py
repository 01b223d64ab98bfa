"""What the router reads from a chat body: the text it embeds and a few counted features.

Most of the signal comes from the text embedding (``routing.embedding``). The
counted features are the few that an embedding of the last turn cannot see or
that earned their place in validation: the prompt's length, the rest of the
conversation, tools, tool results and code blocks. Everything here is pure
and bounded: long texts are cut to a window before anything scans them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# What the embedding sees: the start and the end of the last user turn, where
# the ask usually is. Not the system prompt: the training prompts have none, and
# an agent's long standing instructions would outweigh a short ask.
LAST_HEAD_CHARS = 600
LAST_TAIL_CHARS = 200

FEATURE_NAMES: tuple[str, ...] = (
    "last_len",
    "context_len",
    "depth",
    "tools_offered",
    "tool_results",
    "code_fence",
)
_LAST_LEN_SCALE = math.log1p(16_000)
_CONTEXT_LEN_SCALE = math.log1p(64_000)
_MAX_DEPTH = 10
_MAX_TOOL_RESULTS = 4
_FENCE = "```"


@dataclass(frozen=True, slots=True)
class PromptParts:
    """The parts of a chat body the router looks at."""

    last_user: str
    context_chars: int
    """Characters of the earlier turns (the system prompt is standing instructions, not context)."""
    user_turns: int
    tool_messages: int
    tools_offered: bool
    code_fence: bool


def window(text: str, *, head: int, tail: int) -> str:
    """The first ``head`` and last ``tail`` characters of ``text``: a bounded cost per text.

    >>> window("abcdefgh", head=2, tail=3)
    'ab\\nfgh'
    """
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[len(text) - tail :] if tail else text[:head]


def content_text(content: Any) -> str:
    """The text of one message's ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text")
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


def _last_user_index(messages: Sequence[Any]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, Mapping) and msg.get("role") == "user":
            return i
    return -1


def parts_of(body: Mapping[str, Any]) -> PromptParts:
    """Split a chat body into the last user turn and counts of what came before it."""
    messages = messages_of(body)
    last = _last_user_index(messages)
    context_chars, user_turns, tool_messages, fence = 0, 0, 0, False
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role")
        user_turns += role == "user"
        tool_messages += role in ("tool", "function")
        if i == last:
            continue
        text = content_text(msg.get("content"))
        if role not in ("system", "developer"):
            context_chars += len(text)
        fence = fence or _FENCE in text
    last_text = content_text(messages[last].get("content")) if last >= 0 else ""
    return PromptParts(
        last_user=last_text,
        context_chars=context_chars,
        user_turns=user_turns,
        tool_messages=tool_messages,
        tools_offered=bool(body.get("tools") or body.get("functions")),
        code_fence=fence or _FENCE in window(last_text, head=8_000, tail=2_000),
    )


def embedding_text(parts: PromptParts) -> str:
    """The bounded text the router embeds: the last user turn's head and tail."""
    return window(parts.last_user, head=LAST_HEAD_CHARS, tail=LAST_TAIL_CHARS)


def features(parts: PromptParts) -> tuple[float, ...]:
    """The counted features, each scaled to [0, 1], in ``FEATURE_NAMES`` order."""
    return (
        min(1.0, math.log1p(len(parts.last_user)) / _LAST_LEN_SCALE),
        min(1.0, math.log1p(parts.context_chars) / _CONTEXT_LEN_SCALE),
        min(max(0, parts.user_turns - 1), _MAX_DEPTH) / _MAX_DEPTH,
        1.0 if parts.tools_offered else 0.0,
        min(parts.tool_messages, _MAX_TOOL_RESULTS) / _MAX_TOOL_RESULTS,
        1.0 if parts.code_fence else 0.0,
    )
