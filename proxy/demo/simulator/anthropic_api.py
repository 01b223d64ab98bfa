"""Anthropic's Messages wire format (``POST /v1/messages``).

A ``message`` body with one ``text`` block (or one ``tool_use`` block), and
the event stream Anthropic sends: ``message_start`` (empty content, input
usage), ``content_block_start``, ``ping``, ``content_block_delta`` pieces
(``text_delta`` or ``input_json_delta``), ``content_block_stop``,
``message_delta`` (stop reason and the output token count) and
``message_stop``, each under its own SSE event name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from proxy.demo.simulator.reply import (
    BadRequest,
    ReplyPlan,
    plan_reply,
    positive_int,
    split_json,
    text_of,
)

API_KEY_HEADER = "x-api-key"
VERSION_HEADER = "anthropic-version"


def _offered_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools:
        return None
    if isinstance(choice, dict):
        if choice.get("type") == "none":
            return None
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            return str(choice["name"])
    first = tools[0]
    name = first.get("name") if isinstance(first, dict) else None
    return name if isinstance(name, str) else None


def _is_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def plan_message(body: dict[str, Any]) -> ReplyPlan:
    """Plan the answer to a Messages request; it needs ``max_tokens``."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: field required")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages: each message must be an object")
    max_tokens = positive_int(body.get("max_tokens"))
    if max_tokens is None:
        raise BadRequest("max_tokens: field required")
    system = text_of(body.get("system"))
    texts = [text_of(m.get("content")) for m in messages]
    last = messages[-1]
    asks = last.get("role") == "user" and not _is_tool_result(last.get("content"))
    return plan_reply(
        last_text=texts[-1] if last.get("role") == "user" else "",
        all_texts=[system, *texts],
        max_tokens=max_tokens,
        tool_name=_offered_tool(body) if asks else None,
        id_prefix="toolu_",
    )


def _stop_reason(plan: ReplyPlan) -> str:
    if plan.tool_call is not None:
        return "tool_use"
    return "max_tokens" if plan.truncated else "end_turn"


def _usage(plan: ReplyPlan, *, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _block(plan: ReplyPlan, *, done: bool) -> dict[str, Any]:
    call = plan.tool_call
    if call is not None:
        tool_input = json.loads(call.arguments) if done else {}
        return {"type": "tool_use", "id": call.call_id, "name": call.name, "input": tool_input}
    return {"type": "text", "text": plan.text if done else ""}


def _message(plan: ReplyPlan, *, model: str, message_id: str, done: bool) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block(plan, done=True)] if done else [],
        "stop_reason": _stop_reason(plan) if done else None,
        "stop_sequence": None,
        "usage": _usage(plan, output_tokens=plan.completion_tokens if done else 1),
    }


def message_body(plan: ReplyPlan, *, model: str, message_id: str) -> bytes:
    """The non-streaming ``message`` body."""
    full = _message(plan, model=model, message_id=message_id, done=True)
    return json.dumps(full, separators=(",", ":")).encode()


def _frame(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def _deltas(plan: ReplyPlan) -> list[dict[str, Any]]:
    if plan.tool_call is not None:
        pieces = split_json(plan.tool_call.arguments)
        return [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    return [{"type": "text_delta", "text": p} for p in plan.pieces()]


def message_frames(plan: ReplyPlan, *, model: str, message_id: str) -> list[bytes]:
    """The named SSE events of a streamed message."""
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": _message(plan, model=model, message_id=message_id, done=False),
        },
        {"type": "content_block_start", "index": 0, "content_block": _block(plan, done=False)},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": d} for d in _deltas(plan)),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(plan), "stop_sequence": None},
            "usage": {"output_tokens": plan.completion_tokens},
        },
        {"type": "message_stop"},
    ]
    return [_frame(event) for event in events]


def missing_auth(headers: Mapping[str, str]) -> str | None:
    """Why the request's headers fail Anthropic's checks, or ``None``.

    The key may come as ``x-api-key`` or, as recent SDKs send it, as a bearer
    token; the API version header is always required.
    """
    scheme, _, token = headers.get("authorization", "").partition(" ")
    has_bearer = scheme.lower() == "bearer" and bool(token.strip())
    if not headers.get(API_KEY_HEADER) and not has_bearer:
        return "x-api-key header is required"
    if not headers.get(VERSION_HEADER):
        return "anthropic-version header is required"
    return None
