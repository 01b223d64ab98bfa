"""OpenAI's Responses API wire format (``POST /v1/responses``).

A ``response`` object whose ``output`` holds one assistant message with one
``output_text`` part (or one ``function_call`` item), and the semantic event
stream: ``response.created``, ``response.in_progress``, the output item and
content part openings, ``response.output_text.delta`` pieces, their closings
and ``response.completed`` (``response.incomplete`` when cut by
``max_output_tokens``), which carries the usage. There is no ``[DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.demo.simulator.reply import (
    AnswerIds,
    BadRequest,
    ReplyPlan,
    plan_reply,
    positive_int,
    split_json,
    text_of,
)


def _offered_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or body.get("tool_choice") == "none":
        return None
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function":
            name = tool.get("name")
            if isinstance(name, str):
                return name
    return None


def plan_response(body: dict[str, Any]) -> ReplyPlan:
    """Plan the answer to a Responses API request."""
    raw = body.get("input")
    if isinstance(raw, str):
        items: list[Any] = [{"role": "user", "content": raw}]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise BadRequest("'input' must be a string or a non-empty array")
    texts = [text_of(i.get("content")) if isinstance(i, dict) else "" for i in items]
    instructions = body.get("instructions")
    all_texts = [instructions, *texts] if isinstance(instructions, str) else texts
    last = items[-1] if isinstance(items[-1], dict) else {}
    is_user = last.get("role", "user") == "user" and "content" in last
    return plan_reply(
        last_text=texts[-1] if is_user else str(last.get("output", "")),
        all_texts=all_texts,
        max_tokens=positive_int(body.get("max_output_tokens")),
        tool_name=_offered_tool(body) if is_user else None,
        id_prefix="call_",
    )


def _usage(plan: ReplyPlan) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": plan.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _item(plan: ReplyPlan, *, item_id: str, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    call = plan.tool_call
    if call is not None:
        return {
            "type": "function_call",
            "id": item_id,
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments if done else "",
            "status": status,
        }
    if done and plan.truncated:
        status = "incomplete"
    content = [_text_part(plan.text)] if done else []
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _response(
    plan: ReplyPlan, body: dict[str, Any], ids: AnswerIds, *, done: bool
) -> dict[str, Any]:
    status = "in_progress"
    if done:
        status = "incomplete" if plan.truncated else "completed"
    return {
        "id": ids.response_id,
        "object": "response",
        "created_at": ids.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and plan.truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": ids.model,
        "output": [_item(plan, item_id="msg_" + ids.response_id[5:], done=True)] if done else [],
        "parallel_tool_calls": True,
        "temperature": body.get("temperature", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": _usage(plan) if done else None,
    }


def response_body(plan: ReplyPlan, body: dict[str, Any], ids: AnswerIds) -> bytes:
    """The non-streaming ``response`` object."""
    full = _response(plan, body, ids, done=True)
    return json.dumps(full, separators=(",", ":")).encode()


def _frame(seq: int, payload: dict[str, Any]) -> bytes:
    data = json.dumps({**payload, "sequence_number": seq}, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def _delta_events(plan: ReplyPlan, item_id: str) -> list[dict[str, Any]]:
    at = {"item_id": item_id, "output_index": 0}
    call = plan.tool_call
    if call is not None:
        return [
            *(
                {"type": "response.function_call_arguments.delta", **at, "delta": piece}
                for piece in split_json(call.arguments)
            ),
            {"type": "response.function_call_arguments.done", **at, "arguments": call.arguments},
        ]
    at_part = {**at, "content_index": 0}
    return [
        {"type": "response.content_part.added", **at_part, "part": _text_part("")},
        *(
            {"type": "response.output_text.delta", **at_part, "delta": piece, "logprobs": []}
            for piece in plan.pieces()
        ),
        {"type": "response.output_text.done", **at_part, "text": plan.text, "logprobs": []},
        {"type": "response.content_part.done", **at_part, "part": _text_part(plan.text)},
    ]


def response_frames(plan: ReplyPlan, body: dict[str, Any], ids: AnswerIds) -> list[bytes]:
    """The semantic SSE events of a streamed response, numbered from 0."""
    opening = _response(plan, body, ids, done=False)
    final = _response(plan, body, ids, done=True)
    item_id = final["output"][0]["id"]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": _item(plan, item_id=item_id, done=False),
        },
        *_delta_events(plan, item_id),
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]},
        {
            "type": "response.incomplete" if plan.truncated else "response.completed",
            "response": final,
        },
    ]
    return [_frame(seq, event) for seq, event in enumerate(events)]
