"""Structured access logs: one JSON line per request, on the ``spendgate.access`` logger.

A line names the request (id, tenant, key id, tags), what served it, the
outcome, tokens, money and latency. It never carries keys, and carries the
prompt only when ``server.log_content`` is true.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from proxy.exchange import Exchange
from proxy.render import money_text

ACCESS_LOGGER = "spendgate.access"


class AccessLog:
    """An accounting sink that writes the request's access line."""

    def __init__(self, *, log_content: bool, logger: logging.Logger | None = None) -> None:
        self._log_content = log_content
        self._logger = logger or logging.getLogger(ACCESS_LOGGER)

    def __call__(self, ex: Exchange) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        self._logger.info(json.dumps(self.fields(ex), separators=(",", ":"), ensure_ascii=False))

    def fields(self, ex: Exchange) -> dict[str, Any]:
        usage = ex.pricing.usage if ex.pricing else None
        total_ms = ex.elapsed_s() * 1000
        line: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": ex.request_id,
            "endpoint": ex.endpoint,
            "tenant": ex.tenant,
            "key_id": ex.principal.key_id if ex.principal else None,
            "agent": ex.tags.agent,
            "workflow": ex.tags.workflow,
            "step": ex.tags.step,
            "requested_model": ex.requested_model or None,
            "served_model": ex.served_model,
            "provider": ex.provider,
            "stream": ex.stream,
            "status": ex.status,
            "error_type": ex.error_type,
            "cache": ex.cache_status,
            "route_tier": ex.route_tier,
            "attempts": len(ex.attempts),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "usage_source": usage.source if usage else None,
            "cost_usd": money_text(ex.charges.cost) if ex.charges else None,
            "savings_usd": money_text(ex.charges.savings) if ex.charges else None,
            "upstream_ms": round(ex.upstream_s * 1000, 3),
            "proxy_ms": round(max(0.0, total_ms - ex.upstream_s * 1000), 3),
        }
        if self._log_content:
            line["messages"] = ex.body.get("messages")
        return line


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
