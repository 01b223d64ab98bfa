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

Whether an error may be retried (or fallen back from) is data on the class,
``retryable``, never a guess from message text. Lower-layer exceptions (httpx,
redis, sqlite) are translated at one boundary each, with ``raise ... from``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class SpendgateError(Exception):
    """Base of every error Spendgate raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

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


class RequestError(SpendgateError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(RequestError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(RequestError):
    status = 403
    type = "permission_error"


class NotFoundError(RequestError):
    status = 404
    type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    type = "invalid_request_error"
    default_code = "model_not_found"


class MethodNotAllowedError(RequestError):
    status = 405
    default_code = "method_not_allowed"


class PayloadTooLargeError(RequestError):
    status = 413
    default_code = "request_too_large"


class RateLimitError(RequestError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceededError(RateLimitError):
    type = "budget_exceeded"
    default_code = "budget_exceeded"


class BudgetUnpricedModelError(PermissionDeniedError):
    """A budget applies, but the model's price is unknown: its spend could not be metered."""

    default_code = "budget_unpriced_model"


class ClientDisconnectedError(SpendgateError):
    """The client closed its connection before its answer; the upstream call was cancelled."""

    status = 499
    type = "client_disconnected"
    default_code = "client_disconnected"


class UpstreamError(SpendgateError):
    """The provider failed. The message names the provider, never its key."""

    status = 502
    type = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
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


class UpstreamAuthError(UpstreamError):
    """The provider refused the proxy's own credentials: an operator's problem, not retried."""

    retryable = False
    default_code = "upstream_auth_failed"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    type = "upstream_timeout"
    default_code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    default_code = "upstream_unreachable"


class UpstreamProtocolError(UpstreamError):
    default_code = "upstream_bad_response"


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
