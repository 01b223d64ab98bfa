"""Fault injection: which failure a request meets, and the error it is shown.

A fault is chosen, first match wins, by the ``x-sim-fault`` request header,
by a ``@fault=MODE`` suffix on the model name (which survives a proxy that
forwards no client headers), or by a fault armed through the control
endpoint for the next N requests (optionally only those for one model).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Literal

Dialect = Literal["openai", "anthropic"]

FAULT_HEADER = "x-sim-fault"
MODEL_SUFFIX = "@fault="
DEFAULT_SLOW_MS = 200
DEFAULT_CUT_AFTER = 2


class FaultMode(enum.StrEnum):
    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    OVERLOADED = "529"
    TIMEOUT = "timeout"
    DISCONNECT = "disconnect"
    CUT_STREAM = "cut_stream"
    MALFORMED_JSON = "malformed_json"
    MALFORMED_SSE = "malformed_sse"
    SLOW = "slow"

    @property
    def status(self) -> int | None:
        """The HTTP status of an error-answer fault; ``None`` for the others."""
        return int(self.value) if self.value.isdigit() else None


@dataclass(frozen=True, slots=True)
class Fault:
    mode: FaultMode
    delay_ms: int = DEFAULT_SLOW_MS  # per chunk, for ``slow``
    cut_after: int = DEFAULT_CUT_AFTER  # frames sent before ``cut_stream`` drops
    hold_ms: int = 0  # how long an error answer (or a dropped connection) keeps the caller waiting


@dataclass(slots=True)
class _Armed:
    fault: Fault
    remaining: int
    model: str | None


class FaultBook:
    """Faults armed through the control endpoint, consumed request by request."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def arm(self, fault: Fault, *, count: int, model: str | None = None) -> None:
        """Give the next ``count`` requests (for ``model``, or any) ``fault``."""
        if count > 0:
            self._armed.append(_Armed(fault, count, model))

    def take(self, model: str) -> Fault | None:
        """The fault for a request for ``model``, using up one of its count."""
        for armed in self._armed:
            if armed.model is None or armed.model == model:
                armed.remaining -= 1
                if armed.remaining <= 0:
                    self._armed.remove(armed)
                return armed.fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        """The armed faults, for the stats endpoint."""
        return [
            {"mode": a.fault.mode.value, "remaining": a.remaining, "model": a.model}
            for a in self._armed
        ]

    def clear(self) -> None:
        """Disarm every fault."""
        self._armed.clear()


def parse_mode(value: str) -> FaultMode:
    """The mode named ``value``; raises ``ValueError`` for an unknown name."""
    return FaultMode(value.strip().lower())


def split_model(model: str) -> tuple[str, FaultMode | None]:
    """``"gpt-4o@fault=500"`` -> ``("gpt-4o", FaultMode.SERVER_ERROR)``.

    An unknown mode in the suffix leaves the name whole, so the caller sees
    the typo as part of the model name rather than a silent no-fault.
    """
    base, sep, mode = model.partition(MODEL_SUFFIX)
    if not sep:
        return model, None
    try:
        return base, parse_mode(mode)
    except ValueError:
        return model, None


def fault_from_control(payload: Any) -> tuple[Fault, int, str | None]:
    """Validate a ``POST /_sim/faults`` body; raises ``ValueError`` when bad."""
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    mode = parse_mode(str(payload.get("mode", "")))
    count = _non_negative(payload, "count", 1)
    delay_ms = _non_negative(payload, "delay_ms", DEFAULT_SLOW_MS)
    cut_after = _non_negative(payload, "cut_after", DEFAULT_CUT_AFTER)
    hold_ms = _non_negative(payload, "hold_ms", 0)
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError("model must be a string")
    return Fault(mode, delay_ms=delay_ms, cut_after=cut_after, hold_ms=hold_ms), count, model


def _non_negative(payload: dict[str, Any], key: str, default: int) -> int:
    value = payload.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer")
    return value


_OPENAI_ERRORS: dict[int, tuple[str, str, str | None]] = {
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    429: ("Rate limit reached (simulated).", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    529: ("The model is overloaded (simulated).", "server_error", None),
}

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (simulated)."),
    500: ("api_error", "Internal server error (simulated)."),
    503: ("api_error", "Service unavailable (simulated)."),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(status: int, dialect: Dialect, *, message: str | None = None) -> bytes:
    """The error answer a real provider gives with ``status``, in its shape."""
    if dialect == "anthropic":
        kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Error (simulated)."))
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": kind, "message": message or default},
        }
    else:
        default, kind, code = _OPENAI_ERRORS.get(
            status, ("Error (simulated).", "invalid_request_error", None)
        )
        body = {"error": {"message": message or default, "type": kind, "param": None, "code": code}}
    return json.dumps(body, separators=(",", ":")).encode()


def error_headers(status: int) -> dict[str, str]:
    """Extra headers of an error answer: providers ask clients to wait on 429."""
    return {"retry-after": "1"} if status == 429 else {}


MALFORMED_JSON_BODY = b'{"id": "simulated-broken", "choices": [ this is not JSON'


def corrupt_frames(frames: list[bytes], dialect: Dialect) -> list[bytes]:
    """A stream that starts well, then carries garbage and invalid JSON.

    Anthropic clients dispatch on the event name, so there the broken data
    travels under a name they parse; OpenAI clients parse every data line.
    """
    name = b"event: content_block_delta\n" if dialect == "anthropic" else b""
    garbage = [b"this line is not an SSE field\n\n", name + b'data: {"delta": {"text": broken\n\n']
    return [*frames[:1], *garbage, *frames[1:]]
