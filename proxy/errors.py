"""The one exception tree of Spendgate, and the one place that renders it.

    SpendgateError                      500 server_error
    ├── ConfigError                     (start-up only: never reaches a client)
    ├── RequestError                    400 invalid_request_error
    │   ├── AuthenticationError         401 authentication_error
    │   ├── PermissionDeniedError       403 permission_error
    │   ├── NotFoundError               404 not_found_error
    │   │   └── ModelNotFoundError      404 model_not_found
    │   ├── MethodNotAllowedError       405 method_not_allowed
    │   ├── BudgetUnpricedModelError    403 budget_unpriced_model
    │   ├── PayloadTooLargeError        413 request_too_large
    │   └── RateLimitError              429 rate_limit_exceeded
    │       └── BudgetExceededError     429 budget_exceeded
    ├── ClientDisconnectedError         499 client_disconnected (recorded, never sent)
    └── UpstreamError                   502 upstream_error      (names the provider)
        ├── UpstreamStatusError         upstream 4xx passed through; 5xx -> 502
        ├── UpstreamAuthError           502 upstream_auth_failed (not retried)
        ├── UpstreamTimeoutError        504 upstream_timeout
        ├── UpstreamConnectionError     502 upstream_unreachable
        └── UpstreamProtocolError       502 upstream_bad_response

What an error class means to a client is data, given as class keywords
(``status``, ``type``, ``code``, ``retryable``) and kept on the class by
``SpendgateError``; a keyword a class leaves out is its parent's. Whether an
error may be retried (or fallen back from) is that data too, never a guess
from message text. Lower-layer exceptions (httpx, redis, sqlite) are
translated at one boundary each, with ``raise ... from``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, TypedDict, Unpack


class ErrorFields(TypedDict, total=False):
    """The optional parts of one error, beside its message."""

    param: str | None
    code: str | None
    headers: dict[str, str] | None


class SpendgateError(Exception):
    """Base of every error Spendgate raises on purpose.

    A subclass declares what it is with class keywords:
    ``class NotFoundError(RequestError, status=404, type="not_found_error")``.
    """

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        given = {"status": status, "type": type, "default_code": code, "retryable": retryable}
        for name, value in given.items():
            if value is not None:
                setattr(cls, name, value)

    def __init__(self, message: str, **fields: Unpack[ErrorFields]) -> None:
        super().__init__(message)
        code = fields.get("code")
        self.message = message
        self.param = fields.get("param")
        self.code = code if code is not None else self.default_code
        self.headers = fields.get("headers") or {}

    @property
    def http_status(self) -> int:
        return self.status

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(SpendgateError):
    """The configuration is invalid; ``problems`` lists each with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RequestError(SpendgateError, status=400, type="invalid_request_error"):
    """The client's request cannot be served as sent; the message says why."""


class AuthenticationError(
    RequestError, status=401, type="authentication_error", code="invalid_api_key"
):
    """A missing or wrong proxy key (or admin key)."""


class PermissionDeniedError(RequestError, status=403, type="permission_error"):
    """Refused whoever asks (the admin surface with no ``auth.admin_key`` set, for one)."""


class NotFoundError(RequestError, status=404, type="not_found_error"):
    """No such endpoint."""


class ModelNotFoundError(NotFoundError, type="invalid_request_error", code="model_not_found"):
    """No such model; the message lists the available ones."""


class MethodNotAllowedError(RequestError, status=405, code="method_not_allowed"):
    """A known path asked with the wrong method."""


class PayloadTooLargeError(RequestError, status=413, code="request_too_large"):
    """A body over ``server.max_body_bytes``."""


class RateLimitError(RequestError, status=429, type="rate_limit_error", code="rate_limit_exceeded"):
    """A key's ``rpm``/``tpm``, or the admin login throttle."""


class BudgetExceededError(RateLimitError, type="budget_exceeded", code="budget_exceeded"):
    """A budget would be overspent; the message names it and what remains."""


class BudgetUnpricedModelError(PermissionDeniedError, code="budget_unpriced_model"):
    """A budget applies, but the model's price is unknown: its spend could not be metered."""


class ClientDisconnectedError(
    SpendgateError, status=499, type="client_disconnected", code="client_disconnected"
):
    """The client closed its connection before its answer; the upstream call was cancelled."""


class UpstreamError(SpendgateError, status=502, type="upstream_error", retryable=True):
    """The provider failed. The message names the provider, never its key."""

    def __init__(self, message: str, *, provider: str, **fields: Unpack[ErrorFields]) -> None:
        super().__init__(message, **fields)
        self.provider = provider


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an HTTP error status.

    4xx answers are passed to the client with their own status, type and
    message; 5xx answers become 502. 429 and 5xx are retryable, other 4xx not.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        if retry_after_s is not None and not 0 <= retry_after_s < float("inf"):
            retry_after_s = None
        headers = {"retry-after": str(int(retry_after_s))} if retry_after_s is not None else None
        super().__init__(message, provider=provider, param=param, code=code, headers=headers)
        self.upstream_status = upstream_status
        self.error_type = error_type
        self.retry_after_s = retry_after_s

    @property
    def http_status(self) -> int:
        return self.upstream_status if 400 <= self.upstream_status < 500 else 502

    @property
    def is_retryable(self) -> bool:
        return self.upstream_status == 429 or self.upstream_status >= 500

    def body(self) -> dict[str, Any]:
        body = super().body()
        if 400 <= self.upstream_status < 500 and self.error_type:
            body["error"]["type"] = self.error_type
        return body


class UpstreamAuthError(UpstreamError, retryable=False, code="upstream_auth_failed"):
    """The provider refused the proxy's own credentials: an operator's problem, not retried."""


class UpstreamTimeoutError(
    UpstreamError, status=504, type="upstream_timeout", code="upstream_timeout"
):
    """No answer in time (the provider's read timeout, or the routing deadline)."""


class UpstreamConnectionError(UpstreamError, code="upstream_unreachable"):
    """The provider could not be reached."""


class UpstreamProtocolError(UpstreamError, code="upstream_bad_response"):
    """The provider's answer could not be read."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed attempt may be retried or fallen back from."""
    if isinstance(exc, UpstreamStatusError):
        return exc.is_retryable
    return isinstance(exc, SpendgateError) and exc.retryable


def error_body(exc: SpendgateError) -> bytes:
    """The JSON bytes of OpenAI's error shape for ``exc``."""
    return json.dumps(exc.body(), separators=(",", ":")).encode()


def internal_error() -> SpendgateError:
    """What a client sees for a bug: no traceback, no detail."""
    return SpendgateError("internal error in the proxy; see its logs", code="internal_error")
