"""Reading a client's request: size limit, JSON, a light shape check, tags.

The check is deliberately light (a handful of isinstance tests rather than a
pydantic model of every message): the upstream validates the rest, and its
4xx answer reaches the client unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from proxy.errors import PayloadTooLargeError, RequestError

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TAG_HEADERS = ("x-spendgate-agent", "x-spendgate-workflow", "x-spendgate-step", "x-spendgate-run")
MAX_TAG_CHARS = 256


@dataclass(frozen=True, slots=True)
class Tags:
    """Who spent it: from the ``x-spendgate-*`` headers, else ``metadata``."""

    agent: str | None = None
    workflow: str | None = None
    step: str | None = None
    run: str | None = None


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong."""
    if not raw.strip():
        raise RequestError("the request body is empty: send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"the request body is not valid JSON ({_short(exc)})") from exc
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if "\\ud" in text or "\\uD" in text:
        _reject_lone_surrogates(body)
    return body


def _reject_lone_surrogates(body: dict[str, Any]) -> None:
    # Escaped surrogates are fine in pairs; a lone one cannot be encoded as UTF-8.
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError("the request body holds an unpaired UTF-16 surrogate escape") from exc


def _short(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:120] or type(exc).__name__


def require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("'model' is required and must be a non-empty string", param="model")
    return model


def check_chat_body(body: Mapping[str, Any]) -> None:
    """The few checks the proxy itself relies on."""
    require_model(body)
    messages = body.get("messages")
    if messages is None:
        raise RequestError("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise RequestError(
                f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}",
                param=f"messages[{i}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise RequestError(
                f"messages[{i}].content must be a string or an array of parts",
                param=f"messages[{i}].content",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", param="stream")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise RequestError(f"'{name}' must be a positive integer", param=name)


def wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def tags_of(headers: Mapping[str, str], body: Mapping[str, Any]) -> Tags:
    """The request's tags; a 400 naming the header (or metadata field) of one too long."""
    metadata = body.get("metadata")
    meta = metadata if isinstance(metadata, dict) else {}
    values = []
    for header in TAG_HEADERS:
        name = header.removeprefix("x-spendgate-")
        value = headers.get(header)
        where = header
        if not value:
            value, where = meta.get(name), f"metadata.{name}"
        values.append(_clean_tag(value, where))
    return Tags(*values)


def _clean_tag(value: Any, where: str) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_TAG_CHARS:
        # Refused rather than cut: two different long tags must not merge into one.
        raise RequestError(
            f"{where} is {len(value)} characters long; tags may have at most {MAX_TAG_CHARS}",
            param=where,
            code="tag_too_long",
        )
    printable = "".join(ch for ch in value if ch.isprintable())
    return printable or None
