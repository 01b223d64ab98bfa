"""The one error renderer, and the ``x-spendgate-*`` response headers."""

from __future__ import annotations

import logging
from functools import lru_cache

from starlette.responses import Response

from pricing.cost import format_micro
from proxy.errors import RequestError, SpendgateError, error_body, internal_error
from proxy.pipeline.exchange import Exchange

log = logging.getLogger("spendgate")

JSON = "application/json"


def money_text(micro: int | None) -> str:
    """Micro-dollars as a 6-place decimal string; "unknown" for an unpriced amount."""
    return "unknown" if micro is None else format_micro(micro)


def _header_safe(value: str) -> str:
    # Header values come partly from config and upstreams: never let a CR/LF through.
    if value.isprintable():
        return value[:512]
    return "".join(ch for ch in value if ch.isprintable())[:512]


def exchange_headers(ex: Exchange) -> dict[str, str]:
    headers = {"x-spendgate-request-id": ex.request_id}
    if ex.target is not None:
        headers["x-spendgate-model"] = _header_safe(ex.target.model.name)
        headers["x-spendgate-provider"] = _header_safe(ex.target.provider)
    if ex.endpoint == "chat":
        headers["x-spendgate-cache"] = ex.cache_status
        if ex.cache_similarity is not None:
            headers["x-spendgate-cache-similarity"] = f"{ex.cache_similarity:.4f}"
        if ex.route_reason:
            headers["x-spendgate-route-reason"] = _header_safe(ex.route_reason)
    if ex.charges is not None:
        headers["x-spendgate-cost-usd"] = money_text(ex.charges.cost)
        headers["x-spendgate-baseline-usd"] = money_text(ex.charges.baseline_cost)
        headers["x-spendgate-savings-usd"] = money_text(ex.charges.savings)
    return headers


RawHeaders = list[tuple[bytes, bytes]]


@lru_cache(maxsize=1024)
def _target_headers(model: str, provider: str) -> tuple[tuple[bytes, bytes], ...]:
    # Encoded once per configured target, not once per request.
    return (
        (b"x-spendgate-model", _header_safe(model).encode("latin-1")),
        (b"x-spendgate-provider", _header_safe(provider).encode("latin-1")),
    )


def exchange_raw_headers(ex: Exchange) -> RawHeaders:
    """:func:`exchange_headers`, already encoded the way the ASGI server sends them."""
    raw = [(b"x-spendgate-request-id", ex.request_id.encode("latin-1"))]
    if ex.target is not None:
        raw += _target_headers(ex.target.model.name, ex.target.provider)
    if ex.endpoint == "chat":
        raw.append((b"x-spendgate-cache", ex.cache_status.encode("latin-1")))
        if ex.cache_similarity is not None:
            raw.append((b"x-spendgate-cache-similarity", b"%.4f" % ex.cache_similarity))
        if ex.route_reason:
            raw.append(
                (b"x-spendgate-route-reason", _header_safe(ex.route_reason).encode("latin-1"))
            )
    charges = ex.charges
    if charges is not None:
        raw.append((b"x-spendgate-cost-usd", money_text(charges.cost).encode()))
        raw.append((b"x-spendgate-baseline-usd", money_text(charges.baseline_cost).encode()))
        raw.append((b"x-spendgate-savings-usd", money_text(charges.savings).encode()))
    return raw


def with_raw_headers(response: Response, raw: RawHeaders) -> Response:
    """``response`` with ``raw`` headers added after its own (length, type)."""
    response.raw_headers.extend(raw)
    return response


def as_spendgate_error(exc: BaseException) -> SpendgateError:
    """``exc`` itself when it is ours; a bland internal error (logged) otherwise."""
    if isinstance(exc, SpendgateError):
        return exc
    if isinstance(exc, RecursionError):  # only a client's absurdly nested JSON gets here
        return RequestError("the request body is nested too deeply")
    log.error("unhandled error", exc_info=exc)
    return internal_error()


def error_response(exc: BaseException, ex: Exchange | None = None) -> Response:
    """OpenAI's error shape with the right status, for any exception."""
    error = as_spendgate_error(exc)
    headers = dict(error.headers)
    if ex is not None:
        headers.update(exchange_headers(ex))
    return Response(
        error_body(error), status_code=error.http_status, headers=headers, media_type=JSON
    )
