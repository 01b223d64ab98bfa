"""Rebuild the non-streaming ``chat.completion`` from the chunks of a stream.

Feed every ``chat.completion.chunk`` as it passes through; :meth:`result`
gives the equivalent completion once every choice has a ``finish_reason``,
and None while the stream is incomplete (cut off, failed), so a truncated
stream can never be stored as an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

_NOT_COPIED: Final = frozenset({"choices", "object", "usage", "obfuscation"})
_TEXT_FIELDS: Final = ("content", "refusal")


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type or "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


@dataclass(slots=True)
class _Choice:
    role: str = "assistant"
    text: dict[str, list[str] | None] = field(default_factory=dict)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    tool_calls_seen: bool = False
    tool_calls_empty: Any = None
    function_call: _ToolCall | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChunkAssembler:
    """Accumulates one stream's chunks into the completion they spell."""

    def __init__(self, *, expected_choices: int | None = None) -> None:
        self._expected_choices = expected_choices
        self._top: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage_seen = False
        self._usage: Any = None

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Take one chunk dict, in stream order."""
        for name, value in chunk.items():
            if name not in _NOT_COPIED and self._top.get(name) is None:
                self._top[name] = value
        if "usage" in chunk:
            self._usage_seen = True
            if chunk["usage"] is not None:
                self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, Mapping):
                self._feed_choice(choice)

    def result(self) -> dict[str, Any] | None:
        """The assembled completion, or None while any choice is unfinished."""
        if not self._choices or any(c.finish_reason is None for c in self._choices.values()):
            return None
        if self._expected_choices is not None and len(self._choices) != self._expected_choices:
            return None
        completion: dict[str, Any] = dict(self._top)
        completion["object"] = "chat.completion"
        completion["choices"] = [
            _choice_dict(index, self._choices[index]) for index in sorted(self._choices)
        ]
        if self._usage_seen:
            completion["usage"] = self._usage
        return completion

    def _feed_choice(self, choice: Mapping[str, Any]) -> None:
        index = choice.get("index", 0)
        state = self._choices.setdefault(index, _Choice())
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            _apply_delta(state, delta)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, Mapping):
            state.logprobs = _merge_logprobs(state.logprobs, logprobs)
        if choice.get("finish_reason") is not None:
            state.finish_reason = choice["finish_reason"]


def _apply_delta(state: _Choice, delta: Mapping[str, Any]) -> None:
    for name, value in delta.items():
        if name == "role":
            if value is not None:
                state.role = value
        elif name in _TEXT_FIELDS:
            _append_text(state, name, value)
        elif name == "tool_calls":
            _apply_tool_calls(state, value)
        elif name == "function_call":
            if isinstance(value, Mapping):
                state.function_call = _merge_call(state.function_call or _ToolCall(), value)
        else:
            state.extra[name] = value


def _append_text(state: _Choice, name: str, value: Any) -> None:
    parts = state.text.get(name)
    if isinstance(value, str):
        if parts is None:
            parts = state.text[name] = []
        parts.append(value)
    elif name not in state.text:
        state.text[name] = None


def _apply_tool_calls(state: _Choice, value: Any) -> None:
    if not state.tool_calls_seen:
        # Kept for a message whose tool_calls is null or [] and never grows.
        state.tool_calls_seen = True
        state.tool_calls_empty = value if not isinstance(value, list) else []
    if not isinstance(value, list):
        return
    for position, delta in enumerate(value):
        if not isinstance(delta, Mapping):
            continue
        index = delta.get("index", position)
        call = state.tool_calls.setdefault(index, _ToolCall())
        if call.id is None:
            call.id = delta.get("id")
        if call.type is None:
            call.type = delta.get("type")
        function = delta.get("function")
        if isinstance(function, Mapping):
            _merge_call(call, function)


def _merge_call(call: _ToolCall, function: Mapping[str, Any]) -> _ToolCall:
    # Names arrive whole (some providers repeat them on every delta), so only
    # the first one counts; arguments arrive in pieces and are joined.
    if call.name is None and function.get("name") is not None:
        call.name = function["name"]
    if isinstance(function.get("arguments"), str):
        call.arguments.append(function["arguments"])
    return call


def _merge_logprobs(current: dict[str, Any] | None, update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(current) if current is not None else {}
    for name, value in update.items():
        if isinstance(value, list):
            merged[name] = [*(merged.get(name) or []), *value]
        elif name not in merged or (value is not None and merged[name] is None):
            merged[name] = value
    return merged


def _choice_dict(index: int, state: _Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": state.role, "content": None}
    for name, parts in state.text.items():
        message[name] = None if parts is None else "".join(parts)
    if state.tool_calls:
        message["tool_calls"] = [state.tool_calls[i].to_dict() for i in sorted(state.tool_calls)]
    elif state.tool_calls_seen:
        message["tool_calls"] = state.tool_calls_empty
    if state.function_call is not None:
        call = state.function_call
        message["function_call"] = {"name": call.name, "arguments": "".join(call.arguments)}
    message.update(state.extra)
    return {
        "index": index,
        "message": message,
        "logprobs": state.logprobs,
        "finish_reason": state.finish_reason,
    }
