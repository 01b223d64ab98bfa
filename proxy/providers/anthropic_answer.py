"""Anthropic Messages answers in OpenAI's terms: whole answers and usage.

``chat_completion`` turns a whole Messages answer into a ``chat.completion``;
the stream translator (``anthropic_stream``) shares the usage, id and
finish-reason mapping. ``thinking`` and ``redacted_thinking`` blocks are
skipped: OpenAI's chat format has no field for them. Their tokens still count
in ``completion_tokens`` and ``reasoning_tokens``. Server-tool blocks are
skipped likewise.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pricing.usage import Usage
from proxy.errors import UpstreamProtocolError
from proxy.providers.base import ChatResult

_FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


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
    message = json_object(content, provider, "answer")
    if not isinstance(message.get("content"), list) or not isinstance(message.get("usage"), dict):
        raise UpstreamProtocolError(
            f"{provider}: answer is not a Messages API message", provider=provider
        )
    return message


def json_object(content: bytes | str, provider: str, what: str) -> dict[str, Any]:
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
