"""OpenAI's chat-completions, embeddings and models wire formats.

Pure functions from a parsed request to the bytes a real OpenAI endpoint would
send: a ``chat.completion`` body, the ``chat.completion.chunk`` SSE frames of
a stream (with the usage-only chunk when ``stream_options.include_usage`` asks
for it), an embeddings list, the model list.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
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
from proxy.providers.sse import DONE_FRAME, encode_data

FINGERPRINT = "simulated"
DEFAULT_DIMENSIONS = 256
MODEL_IDS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
_CREATED = 1_700_000_000


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


MODELS_BODY = _dumps(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": _CREATED, "owned_by": "simulated"}
            for m in MODEL_IDS
        ],
    }
)


def _offered_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if isinstance(name, str):
            return name
    first = tools[0]
    function = first.get("function") if isinstance(first, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def plan_chat(body: dict[str, Any]) -> ReplyPlan:
    """Plan the answer to a chat-completions request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("each message must be an object")
    last = messages[-1]
    limit = positive_int(body.get("max_completion_tokens"))
    if limit is None:
        limit = positive_int(body.get("max_tokens"))
    return plan_reply(
        last_text=text_of(last.get("content")) if last.get("role") != "assistant" else "",
        all_texts=[text_of(m.get("content")) for m in messages],
        max_tokens=limit,
        tool_name=_offered_tool(body) if last.get("role") == "user" else None,
        id_prefix="call_",
    )


def _finish_reason(plan: ReplyPlan) -> str:
    if plan.tool_call is not None:
        return "tool_calls"
    return "length" if plan.truncated else "stop"


def _usage(plan: ReplyPlan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(plan: ReplyPlan, ids: AnswerIds) -> bytes:
    """The non-streaming ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
    if plan.tool_call is not None:
        call = plan.tool_call
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        ]
    else:
        message["content"] = plan.text
    return _dumps(
        {
            "id": ids.response_id,
            "object": "chat.completion",
            "created": ids.created,
            "model": ids.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(plan),
                }
            ],
            "usage": _usage(plan),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def _deltas(plan: ReplyPlan) -> list[dict[str, Any]]:
    call = plan.tool_call
    if call is None:
        return [{"role": "assistant", "content": "", "refusal": None}] + [
            {"content": piece} for piece in plan.pieces()
        ]
    opening = {
        "index": 0,
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }
    return [{"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}] + [
        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        for piece in split_json(call.arguments)
    ]


def chat_frames(plan: ReplyPlan, ids: AnswerIds, *, include_usage: bool) -> list[bytes]:
    """The SSE frames of a streamed answer, ``data: [DONE]`` last."""
    head = {
        "id": ids.response_id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    # OpenAI adds "usage": null to every chunk only when the usage chunk was asked for.
    tail: dict[str, Any] = {"usage": None} if include_usage else {}
    choice = {"index": 0, "logprobs": None, "finish_reason": None}
    frames = [
        encode_data({**head, "choices": [{**choice, "delta": delta}], **tail})
        for delta in _deltas(plan)
    ]
    last: dict[str, Any] = {**choice, "delta": {}, "finish_reason": _finish_reason(plan)}
    frames.append(encode_data({**head, "choices": [last], **tail}))
    if include_usage:
        frames.append(encode_data({**head, "choices": [], "usage": _usage(plan)}))
    frames.append(DONE_FRAME)
    return frames


def _inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(i, str) for i in raw):
        return list(raw)
    if isinstance(raw, list) and raw and all(isinstance(i, int) for i in raw):
        return [" ".join(map(str, raw))]  # one text given as token ids
    if isinstance(raw, list) and raw and all(isinstance(i, list) for i in raw):
        return [" ".join(map(str, i)) for i in raw]
    raise BadRequest("'input' must be a string, an array of strings or of token arrays")


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector drawn from the SHA-256 stream of ``text``."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dimensions}I", raw[: dimensions * 4])
    values = [i / 2**31 - 1.0 for i in ints]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def embeddings(body: dict[str, Any], *, model: str) -> bytes:
    """The embeddings list, as floats or as base64 float32 when asked."""
    texts = _inputs(body)
    dimensions = positive_int(body.get("dimensions")) or DEFAULT_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embedding_vector(text, dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(t) for t in texts) // 4 + 1
    return _dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
