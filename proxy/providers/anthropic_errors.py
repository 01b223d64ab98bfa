"""Anthropic's errors in OpenAI's terms: each error type's OpenAI type, code and status.

An error arrives as a whole non-2xx answer (:func:`error_from_response`) or
as an ``error`` event inside a stream (``anthropic_stream``); both become an
``UpstreamStatusError`` whose message names the provider, never its key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from proxy.errors import UpstreamStatusError
from proxy.providers.base import redact, retry_after_of


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
