"""OpenAI chat messages as Anthropic's ``system`` blocks and alternating turns.

The rules (system and developer messages, tool results, merged turns, empty
parts, ``cache_control``, refused parts) are listed with the others in
``proxy.providers.anthropic``.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.errors import RequestError

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

Block = dict[str, Any]


def system_and_turns(messages: list[Any]) -> tuple[list[Block], list[dict[str, Any]]]:
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), where))
            continue
        if role == "user":
            turn = ("user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            turn = ("assistant", _assistant_blocks(message, where))
        elif role == "tool":
            turn = ("user", [_tool_result(message, where)])
        else:
            raise RequestError(f"{where}.role {role!r} is not supported", param=f"{where}.role")
        if not turn[1]:
            continue
        if turns and turns[-1]["role"] == turn[0]:
            turns[-1]["content"].extend(turn[1])
        else:
            turns.append({"role": turn[0], "content": turn[1]})
    if not turns:
        raise RequestError("messages must hold a user or assistant message", param="messages")
    return system, turns


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    raise RequestError(f"{where}.content must be a string or an array of parts", param=where)


def _text_block(part: dict[str, Any], where: str) -> Block | None:
    text = part.get("text", part.get("refusal"))
    if not isinstance(text, str):
        raise RequestError(f"{where} text part has no text", param=where)
    if not text:
        return None
    return _keep_cache_control(part, {"type": "text", "text": text})


def _text_blocks(content: Any, where: str) -> list[Block]:
    blocks: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        if part.get("type") not in ("text", "refusal"):
            raise RequestError(
                f"{where}.content[{j}] must be text", param=f"{where}.content[{j}].type"
            )
        block = _text_block(part, f"{where}.content[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _user_blocks(content: Any, where: str) -> list[Block]:
    blocks: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        at = f"{where}.content[{j}]"
        kind = part.get("type")
        if kind == "text":
            block = _text_block(part, at)
        elif kind == "image_url":
            block = _image_block(part, at)
        else:
            raise RequestError(
                f"content part type {kind!r} is not supported by anthropic models",
                param=f"{at}.type",
            )
        if block is not None:
            blocks.append(block)
    return blocks


def _image_block(part: dict[str, Any], where: str) -> Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise RequestError(f"{where}.image_url.url is missing", param=f"{where}.image_url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or media_type not in IMAGE_MEDIA_TYPES:
            raise RequestError(
                "image data URLs must be base64 JPEG, PNG, GIF or WebP",
                param=f"{where}.image_url",
            )
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return _keep_cache_control(part, {"type": "image", "source": source})


def _keep_cache_control(part: dict[str, Any], block: Block) -> Block:
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str) -> list[Block]:
    blocks = _text_blocks(message.get("content"), where)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise RequestError(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise RequestError(f"{at} needs an id and a function", param=at)
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError as exc:
            raise RequestError(
                f"{at}.function.arguments is not valid JSON", param=f"{at}.function.arguments"
            ) from exc
        if not isinstance(parsed, dict):
            raise RequestError(
                f"{at}.function.arguments must be a JSON object",
                param=f"{at}.function.arguments",
            )
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function.get("name"), "input": parsed}
        )
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise RequestError(f"{where}.tool_call_id is missing", param=f"{where}.tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        text = _text_blocks(content, where)
        if text:
            block["content"] = text
    return block
