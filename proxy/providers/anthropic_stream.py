"""Anthropic Messages answers in OpenAI's terms: whole answers, streams, errors.

Everything here reads what Anthropic sends back; ``proxy.providers.anthropic``
builds what goes out. ``chat_completion`` turns a whole answer into a
``chat.completion``; ``AnthropicStreamTranslator`` turns one streamed answer's
events into ``chat.completion.chunk`` dicts:

    message_start        -> a role chunk (``{"role": "assistant", "content": ""}``)
    text_delta           -> a content chunk
    tool_use block start -> a ``tool_calls`` delta with id, name and ``arguments: ""``
    input_json_delta     -> a ``tool_calls`` delta carrying the next piece of arguments
    message_delta        -> the finish chunk
    message_stop         -> the usage chunk (``choices: []``), always; ends the stream
    ping, thinking, signature and citation deltas, block stops -> nothing
    error                -> raises ``UpstreamStatusError``

``thinking`` and ``redacted_thinking`` blocks are skipped: OpenAI's chat format
has no field for them. Their tokens still count in ``completion_tokens`` and
``reasoning_tokens``. Server-tool blocks are skipped likewise.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pricing.usage import Usage
from proxy.errors import UpstreamProtocolError, UpstreamStatusError
from proxy.providers.base import ChatResult, StreamChunk, redact, retry_after_of
from proxy.providers.sse import SSEEvent


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How one Anthropic error type reads in OpenAI's error shape."""

    openai_type: str
    code: str | None
    status: int  # Anthropic's documented status, used when only the type is known


# Anthropic's documented error types; an unknown type falls back by HTTP status.
_ERROR_KINDS: dict[str, ErrorKind] = {
    "invalid_request_error": ErrorKind("invalid_request_error", None, 400),
    "authentication_error": ErrorKind("authentication_error", "invalid_api_key", 401),
    "billing_error": ErrorKind("insufficient_quota", "insufficient_quota", 402),
    "permission_error": ErrorKind("permission_error", None, 403),
    "not_found_error": ErrorKind("not_found_error", None, 404),
    "conflict_error": ErrorKind("invalid_request_error", "conflict", 409),
    "request_too_large": ErrorKind("invalid_request_error", "request_too_large", 413),
    "rate_limit_error": ErrorKind("rate_limit_error", "rate_limit_exceeded", 429),
    "api_error": ErrorKind("server_error", None, 500),
    "timeout_error": ErrorKind("server_error", "timeout", 504),
    "overloaded_error": ErrorKind("server_error", "overloaded", 529),
}

_FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def error_kind(anthropic_type: str | None, status: int) -> ErrorKind:
    """The OpenAI type and code for an Anthropic error type, else by ``status``."""
    if anthropic_type in _ERROR_KINDS:
        return _ERROR_KINDS[anthropic_type]
    if status == 429:
        return _ERROR_KINDS["rate_limit_error"]
    if status >= 500:
        return ErrorKind("server_error", None, status)
    return ErrorKind("invalid_request_error", None, status)


def status_error(
    *,
    provider: str,
    status: int,
    anthropic_type: str | None,
    message: str,
    retry_after_s: float | None = None,
) -> UpstreamStatusError:
    """The ``UpstreamStatusError`` for one Anthropic error, message naming ``provider``."""
    kind = error_kind(anthropic_type, status)
    return UpstreamStatusError(
        f"{provider}: {message}",
        provider=provider,
        upstream_status=status,
        error_type=kind.openai_type,
        code=kind.code,
        retry_after_s=retry_after_s,
    )


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason``.

    ``pause_turn`` (a server tool paused a long turn) has no OpenAI twin; the
    answer so far is complete text, so it reads as ``stop``.
    """
    return _FINISH_REASONS.get(stop_reason or "", "stop")


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def to_usage(usage: dict[str, Any]) -> Usage:
    """``Usage`` from an Anthropic ``usage`` object.

    Anthropic's ``input_tokens`` excludes cache reads and cache writes, while
    ``Usage.prompt_tokens`` is the whole prompt, so the three are added.
    """
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    details = usage.get("output_tokens_details")
    thinking = _count(details, "thinking_tokens") if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
        completion_tokens=_count(usage, "output_tokens"),
        cached_prompt_tokens=cache_read,
        cache_creation_tokens=cache_write,
        reasoning_tokens=thinking,
        source="upstream",
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object for ``usage``.

    Cache writes go in ``prompt_tokens_details.cache_write_tokens``, the field
    OpenAI's SDK types declare for them; clients that do not know it ignore it.
    """
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_prompt_tokens,
            "cache_write_tokens": usage.cache_creation_tokens,
        },
    }
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def completion_id(message_id: object) -> str:
    """The OpenAI-style id for an Anthropic message id, keeping it traceable."""
    if isinstance(message_id, str) and message_id:
        return f"chatcmpl-{message_id}"
    return f"chatcmpl-{uuid.uuid4().hex}"


def chat_completion(content: bytes, *, model: str, provider: str) -> ChatResult:
    """The ``chat.completion`` for a whole Messages API answer, labelled ``model``.

    Raises ``UpstreamProtocolError`` when ``content`` is not a Messages answer.
    """
    message = _read_message(content, provider)
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif block.get("type") == "tool_use":
            tool_calls.append(_tool_call(block))
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text else None,
        "refusal": None,
    }
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage = to_usage(message["usage"])
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason(message.get("stop_reason")),
    }
    parsed = {
        "id": completion_id(message.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": openai_usage(usage),
    }
    body = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()
    return ChatResult(body=body, parsed=parsed, usage=usage)


def _read_message(content: bytes, provider: str) -> dict[str, Any]:
    message = _json_object(content, provider, "answer")
    if not isinstance(message.get("content"), list) or not isinstance(message.get("usage"), dict):
        raise UpstreamProtocolError(
            f"{provider}: answer is not a Messages API message", provider=provider
        )
    return message


def _json_object(content: bytes | str, provider: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise UpstreamProtocolError(f"{provider}: {what} is not JSON", provider=provider) from exc
    if not isinstance(data, dict):
        raise UpstreamProtocolError(f"{provider}: {what} is not a JSON object", provider=provider)
    return data


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = json.dumps(block.get("input") or {}, separators=(",", ":"), ensure_ascii=False)
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }


def error_from_response(
    status: int,
    content: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    secrets: Iterable[str] = (),
) -> UpstreamStatusError:
    """The error for a non-2xx answer with Anthropic's ``{"type": "error"}`` body.

    Each of ``secrets`` is scrubbed from the upstream message in case it is echoed.
    """
    anthropic_type, message = _error_fields(content)
    if message is None:
        message = f"HTTP {status} with an unreadable error body"
    message = redact(message, secrets)
    return status_error(
        provider=provider,
        status=status,
        anthropic_type=anthropic_type,
        message=message,
        retry_after_s=retry_after_of(headers),
    )


def _error_fields(content: bytes) -> tuple[str | None, str | None]:
    try:
        body = json.loads(content)
    except ValueError:
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("type"), error.get("message")
    return (
        kind if isinstance(kind, str) else None,
        message if isinstance(message, str) and message else None,
    )


class AnthropicStreamTranslator:
    """Turns one Anthropic Messages stream into OpenAI ``chat.completion.chunk`` dicts.

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
        self._usage: Usage | None = None
        self._finish_sent = False
        self._finished = False

    @property
    def finished(self) -> bool:
        """Whether ``message_stop`` arrived."""
        return self._finished

    @property
    def usage(self) -> Usage | None:
        """Usage so far: input from ``message_start``, output from ``message_delta``."""
        return self._usage

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        """Chunks for one upstream event; raises ``UpstreamStatusError`` on ``error``."""
        data = _json_object(event.data, self._provider, "stream event")
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
        message = data.get("message")
        message = message if isinstance(message, dict) else {}
        self._id = completion_id(message.get("id"))
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._start_usage = usage
            self._usage = to_usage(usage)
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_block_start(self, data: dict[str, Any]) -> list[StreamChunk]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
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
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
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
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
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
