"""One streamed Anthropic Messages answer in OpenAI's terms.

``AnthropicStreamTranslator`` turns the answer's events into
``chat.completion.chunk`` dicts:

    message_start        -> a role chunk (``{"role": "assistant", "content": ""}``)
    text_delta           -> a content chunk
    tool_use block start -> a ``tool_calls`` delta with id, name and ``arguments: ""``
    input_json_delta     -> a ``tool_calls`` delta carrying the next piece of arguments
    message_delta        -> the finish chunk
    message_stop         -> the usage chunk (``choices: []``), always; ends the stream
    ping, thinking, signature and citation deltas, block stops -> nothing
    error                -> raises ``UpstreamStatusError``

Usage, ids and finish reasons are read as for whole answers
(``anthropic_answer``), errors as for error answers (``anthropic_errors``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from pricing.usage import Usage
from proxy.errors import UpstreamProtocolError, UpstreamStatusError
from proxy.providers.anthropic_answer import (
    completion_id,
    finish_reason,
    json_object,
    openai_usage,
    to_usage,
)
from proxy.providers.anthropic_errors import error_kind, status_error
from proxy.providers.base import StreamChunk, StreamTranslator
from proxy.providers.sse import SSEEvent


class AnthropicStreamTranslator(StreamTranslator):
    """Turns one Anthropic Messages stream into OpenAI ``chat.completion.chunk`` dicts.

    It is finished once ``message_stop`` arrives; its usage so far has the
    input from ``message_start`` and the output from ``message_delta``.
    Tool calls are numbered by their own counter, as OpenAI's ``index`` is the
    position among tool calls, whereas Anthropic's block index also counts text
    and thinking blocks.
    """

    def __init__(self, *, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._created = int(time.time())
        self._id = completion_id(None)
        self._tool_index: dict[int, int] = {}
        self._start_usage: dict[str, Any] = {}
        self._finish_sent = False

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        """Chunks for one upstream event; raises ``UpstreamStatusError`` on ``error``."""
        data = json_object(event.data, self._provider, "stream event")
        kind = data.get("type") or event.event
        if kind == "message_start":
            return self._on_message_start(data)
        if kind == "content_block_start":
            return self._on_block_start(data)
        if kind == "content_block_delta":
            return self._on_block_delta(data)
        if kind == "message_delta":
            return self._on_message_delta(data)
        if kind == "message_stop":
            return self._on_message_stop()
        if kind == "error":
            raise self._stream_error(data)
        # ping, content_block_stop and event types added later carry nothing to relay
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> StreamChunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return StreamChunk(self._envelope(choices=[choice]))

    def _envelope(self, **fields: Any) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            **fields,
        }

    def _on_message_start(self, data: dict[str, Any]) -> list[StreamChunk]:
        message = _object(data, "message")
        self._id = completion_id(message.get("id"))
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._start_usage = usage
            self._usage = to_usage(usage)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_block_start(self, data: dict[str, Any]) -> list[StreamChunk]:
        block = data.get("content_block")
        if not isinstance(block, dict) or block.get("type") not in ("text", "tool_use"):
            return []
        if block["type"] == "text":
            return [self._chunk({"content": block["text"]})] if block.get("text") else []
        index = len(self._tool_index)
        self._tool_index[_block_index(data)] = index
        preset = block.get("input")
        # The input normally arrives as input_json_delta; a non-empty start input is whole.
        arguments = json.dumps(preset, separators=(",", ":")) if preset else ""
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _on_block_delta(self, data: dict[str, Any]) -> list[StreamChunk]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_index.get(_block_index(data))
            if index is None:
                raise UpstreamProtocolError(
                    f"{self._provider}: input_json_delta for a block that is not a tool call",
                    provider=self._provider,
                )
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _on_message_delta(self, data: dict[str, Any]) -> list[StreamChunk]:
        usage = data.get("usage")
        if isinstance(usage, dict):
            # message_delta counts are cumulative, so they replace those of message_start
            self._usage = to_usage({**self._start_usage, **usage})
        delta = data.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None or self._finish_sent:
            return []
        self._finish_sent = True
        return [self._chunk({}, finish_reason(stop_reason))]

    def _on_message_stop(self) -> list[StreamChunk]:
        chunks: list[StreamChunk] = []
        if not self._finish_sent:
            self._finish_sent = True
            chunks.append(self._chunk({}, "stop"))
        usage = self._usage if self._usage is not None else Usage()
        chunks.append(StreamChunk(self._envelope(choices=[], usage=openai_usage(usage))))
        self._finished = True
        return chunks

    def _stream_error(self, data: dict[str, Any]) -> UpstreamStatusError:
        error = _object(data, "error")
        anthropic_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message")
        kind = error_kind(anthropic_type, 500)
        return status_error(
            provider=self._provider,
            status=kind.status,
            anthropic_type=anthropic_type,
            message=f"{message if isinstance(message, str) else 'error event'} "
            f"({anthropic_type or 'unknown error type'}, in the stream)",
        )


def _block_index(data: dict[str, Any]) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else -1


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    """``data[name]`` when it is an object, else an empty one."""
    value = data.get(name)
    return value if isinstance(value, dict) else {}
