"""Replay a stored ``chat.completion`` as a stream of ``chat.completion.chunk`` objects.

The shape follows OpenAI's streaming format: per choice, a first chunk with
the role (and the empty initial ``content``), the content in small pieces cut
at word boundaries, each tool call as an opening delta (index, id, type,
function name) followed by its arguments in pieces, then a chunk with an empty
delta and the ``finish_reason``. With ``include_usage`` every chunk carries
``"usage": null`` and a last chunk has ``"choices": []`` and the usage.
Every chunk repeats the completion's id, created, model and the other
top-level fields such as ``system_fingerprint``.

When a choice has token logprobs whose tokens spell its content, content
pieces follow token boundaries and carry their tokens' logprobs; otherwise
the logprobs ride on the finish chunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

DEFAULT_CHUNK_CHARS: Final = 16
TOKENS_PER_CHUNK: Final = 4

_WORDS: Final = re.compile(r"\S+\s*|\s+")
_NOT_REPEATED: Final = frozenset({"choices", "object", "usage"})
_STREAMED_MESSAGE_FIELDS: Final = frozenset(
    {"role", "content", "refusal", "tool_calls", "function_call"}
)


def replay_chunks(
    completion: Mapping[str, Any],
    *,
    include_usage: bool,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
) -> Iterator[dict[str, Any]]:
    """Chunks that stream ``completion``, choice after choice."""
    header = {k: v for k, v in completion.items() if k not in _NOT_REPEATED}
    header["object"] = "chat.completion.chunk"
    if include_usage:
        header["usage"] = None
    for choice in completion.get("choices") or ():
        for choice_delta in _choice_deltas(choice, chunk_chars=chunk_chars):
            yield {**header, "choices": [choice_delta]}
    usage = completion.get("usage")
    if include_usage and usage is not None:
        yield {**header, "choices": [], "usage": usage}


def split_text(text: str, chunk_chars: int = DEFAULT_CHUNK_CHARS) -> list[str]:
    """``text`` cut into pieces of about ``chunk_chars``, at word ends where possible.

    The pieces concatenate back to ``text`` exactly.
    """
    pieces: list[str] = []
    current = ""
    for match in _WORDS.finditer(text):
        word = match.group()
        if current and len(current) + len(word) > chunk_chars:
            pieces.append(current)
            current = ""
        while len(word) > 2 * chunk_chars:
            # A run with no spaces (a URL, base64) is cut hard so that no
            # single piece grows unbounded.
            pieces.append(word[:chunk_chars])
            word = word[chunk_chars:]
        current += word
    if current:
        pieces.append(current)
    return pieces


def _choice_deltas(choice: Mapping[str, Any], *, chunk_chars: int) -> Iterator[dict[str, Any]]:
    index = choice.get("index", 0)
    message: Mapping[str, Any] = choice.get("message") or {}
    logprobs = choice.get("logprobs")
    aligned = _token_aligned(message.get("content"), logprobs)

    yield _delta(index, _opening_delta(message))
    if aligned is not None:
        for piece, tokens in aligned:
            yield _delta(index, {"content": piece}, logprobs={"content": tokens, "refusal": None})
    for field in ("content", "refusal"):
        value = message.get(field)
        if isinstance(value, str) and not (field == "content" and aligned is not None):
            for piece in split_text(value, chunk_chars):
                yield _delta(index, {field: piece})
    for tool_delta in _tool_call_deltas(message.get("tool_calls"), chunk_chars=chunk_chars):
        yield _delta(index, {"tool_calls": [tool_delta]})
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        yield _delta(index, {"function_call": {"name": function_call.get("name"), "arguments": ""}})
        for piece in split_text(function_call.get("arguments") or "", chunk_chars):
            yield _delta(index, {"function_call": {"arguments": piece}})
    finish_logprobs = logprobs if aligned is None else _rest_of(logprobs)
    yield _delta(index, {}, finish_reason=choice.get("finish_reason"), logprobs=finish_logprobs)


def _opening_delta(message: Mapping[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": message.get("role", "assistant")}
    for field in ("content", "refusal"):
        if field in message:
            delta[field] = "" if isinstance(message[field], str) else None
    tool_calls = message.get("tool_calls")
    if "tool_calls" in message and not tool_calls:
        delta["tool_calls"] = tool_calls
    # Fields with no streaming form (annotations, audio, ...) travel whole.
    for field, value in message.items():
        if field not in _STREAMED_MESSAGE_FIELDS:
            delta[field] = value
    return delta


def _tool_call_deltas(tool_calls: Any, *, chunk_chars: int) -> Iterator[dict[str, Any]]:
    if not isinstance(tool_calls, Sequence):
        return
    for position, call in enumerate(tool_calls):
        function = call.get("function") or {}
        opening: dict[str, Any] = {
            "index": position,
            "id": call.get("id"),
            "type": call.get("type", "function"),
            "function": {"name": function.get("name"), "arguments": ""},
        }
        yield opening
        for piece in split_text(function.get("arguments") or "", chunk_chars):
            yield {"index": position, "function": {"arguments": piece}}


def _token_aligned(content: Any, logprobs: Any) -> list[tuple[str, list[Any]]] | None:
    if not isinstance(content, str) or not isinstance(logprobs, Mapping):
        return None
    tokens = logprobs.get("content")
    if not isinstance(tokens, list) or not tokens:
        return None
    if not all(isinstance(t, Mapping) and isinstance(t.get("token"), str) for t in tokens):
        return None
    if "".join(t["token"] for t in tokens) != content:
        return None
    groups = [tokens[i : i + TOKENS_PER_CHUNK] for i in range(0, len(tokens), TOKENS_PER_CHUNK)]
    return [("".join(t["token"] for t in group), group) for group in groups]


def _rest_of(logprobs: Any) -> dict[str, Any] | None:
    if not isinstance(logprobs, Mapping):
        return None
    rest = {k: v for k, v in logprobs.items() if k != "content"}
    if not any(v is not None for v in rest.values()):
        return None
    return {"content": None, **rest}


def _delta(
    index: Any,
    delta: dict[str, Any],
    *,
    finish_reason: Any = None,
    logprobs: Any = None,
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
