"""The proxy's OpenAPI document, served at ``/openapi.json``.

The hot-path routes are plain Starlette routes, invisible to FastAPI's
generator, so their part of the document is written out here: loose enough
that every request OpenAI's API accepts is valid, strict on the few fields the
proxy itself checks.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "null"}]},
    },
}

_CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "n": {"type": "integer", "minimum": 1},
    },
}

_MODEL_REQUEST = {
    "type": "object",
    "required": ["model"],
    "properties": {"model": {"type": "string", "minLength": 1}},
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "OpenAI's error shape",
            "content": {"application/json": {"schema": _ERROR}},
        }
        for status in statuses
    }


def _post(summary: str, schema: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {
                "200": {"description": "the upstream's answer", "content": content},
                **_errors(400, 401, 404, 413, 429, 502, 504),
            },
        }
    }


def _get(summary: str, media: str = "application/json") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {
                "200": {"description": summary, "content": {media: {"schema": {}}}},
                **_errors(401),
            },
        }
    }


def proxy_paths() -> dict[str, Any]:
    return {
        "/v1/chat/completions": _post(
            "Chat completion (OpenAI format)", _CHAT_REQUEST, stream=True
        ),
        "/v1/embeddings": _post("Embeddings, passed through", _MODEL_REQUEST, stream=False),
        "/v1/responses": _post("Responses API, passed through", _MODEL_REQUEST, stream=True),
        "/v1/models": _get("Configured models, plus auto"),
        "/healthz": _get("Liveness"),
        "/readyz": _get("Readiness of each dependency"),
        "/metrics": _get("Prometheus metrics", "text/plain"),
    }


def extend_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's generated document plus the Starlette routes."""
    document.setdefault("paths", {}).update(proxy_paths())
    return document
