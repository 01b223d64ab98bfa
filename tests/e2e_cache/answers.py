"""One comparable shape for an answer, whether it came whole or streamed.

A ``ChatCompletion`` and the ``ChatCompletionChunk`` objects of a stream, both
as the official SDK parsed them, are reduced to the same :class:`Answer`, so
"the stream spells the same answer" is a plain equality. The stream side is
assembled here, independently of the proxy's own assembler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk


@dataclass(frozen=True)
class ToolCall:
    id: str | None
    type: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Answer:
    """What a client can observe of a single-choice completion."""

    id: str
    model: str
    created: int
    system_fingerprint: str | None
    role: str | None
    content: str | None
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: dict[str, Any] | None = None


def of_completion(completion: ChatCompletion) -> Answer:
    """The answer in a non-streaming response."""
    assert len(completion.choices) == 1, completion
    choice = completion.choices[0]
    calls = tuple(
        ToolCall(c.id, c.type, c.function.name, c.function.arguments)
        for c in choice.message.tool_calls or ()
        if c.type == "function"
    )
    return Answer(
        id=completion.id,
        model=completion.model,
        created=completion.created,
        system_fingerprint=completion.system_fingerprint,
        role=choice.message.role,
        content=choice.message.content,
        finish_reason=choice.finish_reason,
        tool_calls=calls,
        usage=completion.usage.model_dump() if completion.usage else None,
    )


@dataclass
class _Call:
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


def of_chunks(chunks: Iterable[ChatCompletionChunk]) -> Answer:
    """The answer a stream spells, folding deltas the way a client would."""
    chunks = list(chunks)
    assert chunks, "empty stream"
    first = chunks[0]
    role: str | None = None
    content: list[str] | None = None
    finish: str | None = None
    calls: dict[int, _Call] = {}
    usage: dict[str, Any] | None = None
    for chunk in chunks:
        assert (chunk.id, chunk.model, chunk.created) == (first.id, first.model, first.created)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            assert choice.index == 0, chunk
            delta = choice.delta
            role = role or delta.role
            if delta.content is not None:
                content = [*(content or []), delta.content]
            for tool in delta.tool_calls or ():
                call = calls.setdefault(tool.index, _Call())
                call.id = call.id or tool.id
                call.type = call.type or tool.type
                if tool.function is not None:
                    call.name = call.name or tool.function.name
                    call.arguments.append(tool.function.arguments or "")
            finish = choice.finish_reason or finish
    return Answer(
        id=first.id,
        model=first.model,
        created=first.created,
        system_fingerprint=first.system_fingerprint,
        role=role,
        content=None if content is None else "".join(content),
        finish_reason=finish,
        tool_calls=tuple(
            ToolCall(c.id, c.type, c.name, "".join(c.arguments)) for _, c in sorted(calls.items())
        ),
        usage=usage,
    )


def sse_payloads(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[len("data:") :].strip() for line in body.splitlines() if line.startswith("data:")]


@dataclass(frozen=True)
class Frames:
    """A raw SSE body cut into its JSON chunks and its terminator."""

    chunks: list[dict[str, Any]]
    done: bool

    @classmethod
    def parse(cls, body: str) -> Frames:
        payloads = sse_payloads(body)
        done = bool(payloads) and payloads[-1] == "[DONE]"
        assert "[DONE]" not in payloads[:-1], "[DONE] before the end of the stream"
        return cls([json.loads(p) for p in payloads if p != "[DONE]"], done)

    def content_chunks(self) -> list[str]:
        """Non-empty content pieces, in order."""
        return [
            c["choices"][0]["delta"]["content"]
            for c in self.chunks
            if c.get("choices") and c["choices"][0]["delta"].get("content")
        ]

    def usage_chunks(self) -> list[dict[str, Any]]:
        """Chunks that carry a usage object."""
        return [c for c in self.chunks if c.get("usage") is not None]
