"""Structured access logs: one JSON line per request, on standard output.

A line names the request (id, tenant, key id, tags), what served it, the
outcome, tokens, money and latency. It never carries keys, and carries the
prompt only when ``server.log_content`` is true.

The request path only takes a note (``proxy.pipeline.ledger_sink.access_note``:
the request's ledger record plus the few values the ledger does not hold);
the ledger writer formats the notes of a whole batch with :func:`access_lines`
and writes them, off the event loop, in its own process (``write_lines``) or,
for an in-memory ledger, through the ``spendgate.access`` logger from its
worker thread (``log_lines``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any

from pricing.cost import format_micro
from pricing.ledger.record import RECORD_COLUMNS

if TYPE_CHECKING:  # the writer process formats notes without loading the request path
    from proxy.pipeline.ledger_sink import AccessNote

ACCESS_LOGGER = "spendgate.access"

_AT = {name: i for i, name in enumerate(RECORD_COLUMNS)}
_ID, _TENANT, _KEY, _AGENT, _WORKFLOW, _STEP = (
    _AT[n] for n in ("request_id", "tenant", "key_id", "agent", "workflow", "step")
)
_REQUESTED, _SERVED, _PROVIDER = (_AT[n] for n in ("requested_model", "served_model", "provider"))
_STATUS, _ERROR, _CACHE, _ATTEMPTS = (
    _AT[n] for n in ("http_status", "error_type", "cache_status", "attempts")
)
_PROMPT, _COMPLETION, _USAGE, _COST, _SAVINGS = (
    _AT[n] for n in ("prompt_tokens", "completion_tokens", "usage_source", "cost", "savings")
)


def _money(charged: bool, micro: int | None) -> str | None:
    if not charged:
        return None
    return "unknown" if micro is None else format_micro(micro)


def _stamp(epoch_s: float) -> str:
    """ISO-8601 UTC with milliseconds and a "Z" suffix."""
    seconds = int(epoch_s)
    millis = int((epoch_s - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def access_fields(note: AccessNote) -> dict[str, Any]:
    """The line of one note as a dict, in its documented key order."""
    r, logged_at, endpoint, stream, tier, upstream_ms, proxy_ms, priced, charged, content = note
    line: dict[str, Any] = {
        "ts": _stamp(logged_at),
        "request_id": r[_ID],
        "endpoint": endpoint,
        "tenant": r[_TENANT],
        "key_id": r[_KEY],
        "agent": r[_AGENT],
        "workflow": r[_WORKFLOW],
        "step": r[_STEP],
        "requested_model": r[_REQUESTED] or None,
        "served_model": r[_SERVED] or None,
        "provider": r[_PROVIDER] or None,
        "stream": stream,
        "status": r[_STATUS],
        "error_type": r[_ERROR],
        "cache": r[_CACHE],
        "route_tier": tier,
        "attempts": r[_ATTEMPTS],
        "prompt_tokens": r[_PROMPT] if priced else None,
        "completion_tokens": r[_COMPLETION] if priced else None,
        "usage_source": r[_USAGE] if priced else None,
        "cost_usd": _money(charged, r[_COST]),
        "savings_usd": _money(charged, r[_SAVINGS]),
        "upstream_ms": upstream_ms,
        "proxy_ms": proxy_ms,
    }
    if content is not None:
        line["messages"] = content[0]
    return line


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def access_lines(notes: Iterable[AccessNote]) -> list[str]:
    """The JSON access lines of a batch of notes, in order."""
    return [_ENCODE(access_fields(note)) for note in notes]


def write_lines(notes: Sequence[AccessNote], stream: IO[str] | None = None) -> None:
    """Format a batch and write it to ``stream`` (standard output) in one write."""
    out = stream or sys.stdout
    lines = access_lines(notes)
    if not lines:
        return
    try:
        out.write("\n".join(lines) + "\n")
        out.flush()
    except (OSError, ValueError):  # a closed or broken stdout must not stop the ledger
        pass


def log_lines(notes: Sequence[AccessNote]) -> None:
    """Format a batch and hand each line to the ``spendgate.access`` logger."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return
    for line in access_lines(notes):
        logger.info(line)


class BatchedLineHandler(logging.Handler):
    """Writes lines to a stream in batches: one ``write`` per batch, not per request.

    A batch goes out when it holds ``max_lines``, when a line arrives more than
    ``max_delay_s`` after the last write, and on ``flush`` (the server calls
    it every couple of seconds, and at shutdown).
    """

    def __init__(self, stream: Any, *, max_lines: int = 256, max_delay_s: float = 1.0) -> None:
        super().__init__()
        self._stream = stream
        self._lines: list[str] = []
        self._max_lines = max_lines
        self._max_delay_s = max_delay_s
        self._last_write = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.append(record.getMessage())
        if len(self._lines) >= self._max_lines or (
            time.monotonic() - self._last_write > self._max_delay_s
        ):
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            lines, self._lines = self._lines, []
            if lines:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            self._last_write = time.monotonic()
        except (OSError, ValueError):  # a closed or broken stdout must not break requests
            pass
        finally:
            self.release()


def configure_access_log(enabled: bool) -> None:
    """Send access lines, bare and batched, to standard output."""
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    if not logger.handlers:
        logger.addHandler(BatchedLineHandler(sys.stdout))


def flush_access_log() -> None:
    for handler in logging.getLogger(ACCESS_LOGGER).handlers:
        handler.flush()
