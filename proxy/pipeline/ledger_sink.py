"""From a finished exchange to a ledger record, and the sink that hands it to the writer.

With the access log on, the record travels with a note of the few values an
access line needs beyond it; the writer formats the line off the request path
(``proxy.ops.access_log``).

The money in the response headers is exactly the money on the invoice: both
come from ``pricing.ledger.costs_from``, the arithmetic ``spendgate audit``
uses to recompute every row.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from pricing.cost import UnitPrices
from pricing.ledger import LedgerRow, LedgerWriter, costs_from
from pricing.ledger.record import Record, row_of
from pricing.ledger.schema import ts_to_us
from pricing.usage import Usage
from proxy.pipeline.exchange import Charges, Exchange, Pricing

_SOURCES = frozenset({"catalog", "override", "config", "unknown"})
_NO_USAGE = Usage(source="none")
_UNKNOWN_PRICES: tuple[str | None, ...] = (None, None, None, None)
MAX_SPILL_SLOTS = 64

# (record, logged at (epoch s), endpoint, stream, route tier, upstream ms,
#  proxy ms, priced, charged, (messages,) or None)
AccessNote = tuple[Record, float, str, bool, "str | None", float, float, bool, bool, Any]


def _price_texts(prices: UnitPrices | None, source: str) -> tuple[str | None, ...]:
    """The four unit prices as the ledger stores them (decimal text), or None when unknown."""
    if prices is None or source == "unknown":
        return _UNKNOWN_PRICES
    return (
        str(prices.input),
        str(prices.cached_input),
        str(prices.cache_write),
        str(prices.output),
    )


# One encoder for every row: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _attempts_detail(ex: Exchange) -> str:
    return _ENCODE(
        [
            {"model": a.model, "provider": a.provider, "outcome": a.outcome, "error": a.error_type,
             "status": a.status, "ms": round(a.ms)}
            for a in ex.attempts
        ]
    )  # fmt: skip


def charges_of(ex: Exchange, pricing: Pricing | None) -> Charges:
    """Cost, baseline and savings by the ledger's own arithmetic (``costs_from``)."""
    usage = pricing.usage if pricing else _NO_USAGE
    base_known = pricing is not None and pricing.baseline_price_source != "unknown"
    known = pricing is not None and pricing.price_source in _SOURCES - {"unknown"}
    costs = costs_from(
        cache_status=ex.cache_status,
        overhead_cost=ex.overhead_micro,
        usage=usage,
        prices=pricing.prices if known and pricing else None,
        baseline_usage=pricing.baseline_usage if pricing else _NO_USAGE,
        baseline_prices=pricing.baseline_prices if base_known and pricing else None,
    )
    return Charges(costs.cost, costs.baseline_cost, costs.savings)


def ledger_record(ex: Exchange) -> Record:
    """The exchange's one ledger record (``RECORD_COLUMNS`` order), built once it is finished.

    Only a tuple: the writer checks it (``pricing.ledger.record.row_of``) off
    the request path.
    """
    pricing, charges = ex.pricing, ex.charges or charges_of(ex, ex.pricing)
    usage = pricing.usage if pricing else _NO_USAGE
    base = pricing.baseline_usage if pricing else _NO_USAGE
    source = pricing.price_source if pricing and pricing.price_source in _SOURCES else "unknown"
    base_source = pricing.baseline_price_source if pricing else "unknown"
    tags = ex.tags
    total_ms = int(ex.elapsed_s() * 1000)
    upstream_ms = int(ex.upstream_s * 1000) if ex.upstream_s else None
    return (
        ex.request_id, ts_to_us(ex.received_at), ex.tenant,
        ex.principal.key_id if ex.principal else None,
        tags.agent, tags.workflow, tags.step, tags.run,
        ex.requested_model, ex.served_model or "",
        pricing.baseline_model if pricing else "", ex.provider or "",
        ex.cache_status, ex.route_reason, len(ex.attempts), _attempts_detail(ex),
        usage.prompt_tokens, usage.cached_prompt_tokens, usage.cache_creation_tokens,
        usage.completion_tokens, usage.reasoning_tokens, usage.source,
        source, *_price_texts(pricing.prices if pricing else None, source),
        base.prompt_tokens, base.cached_prompt_tokens, base.cache_creation_tokens,
        base.completion_tokens,
        *_price_texts(pricing.baseline_prices if pricing else None, base_source), base_source,
        ex.overhead_micro, charges.cost, charges.baseline_cost, charges.savings,
        pricing.catalog_version if pricing else "",
        upstream_ms, max(0, total_ms - (upstream_ms or 0)), ex.status, ex.error_type,
    )  # fmt: skip


def access_note(ex: Exchange, record: Record, *, log_content: bool) -> AccessNote:
    """What the access line needs beyond the ledger ``record``; cheap, for the request path."""
    upstream_ms = round(ex.upstream_s * 1000, 3)
    total_ms = ex.elapsed_s() * 1000
    content = (ex.body.get("messages"),) if log_content else None
    return (
        record, time.time(), ex.endpoint, ex.stream, ex.route_tier, upstream_ms,
        round(max(0.0, total_ms - upstream_ms), 3), ex.pricing is not None,
        ex.charges is not None, content,
    )  # fmt: skip


def ledger_row(ex: Exchange) -> LedgerRow:
    """The checked row of :func:`ledger_record` (tests, tools)."""
    return row_of(ledger_record(ex))


class SpillSlot:
    """An exclusive spill file per process, so ``--workers N`` never share one.

    A worker takes the first free ``<base>.<n>`` (an flock held for the
    process's life); after a restart the workers take the same slots again and
    replay whatever the previous run left in them.
    """

    def __init__(self, base: Path) -> None:
        base.parent.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SPILL_SLOTS):
            path = base.with_name(f"{base.name}.{slot}")
            handle: IO[str] = open(path.with_suffix(path.suffix + ".lock"), "a")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self.path, self._handle = path, handle
            return
        raise RuntimeError(f"no free ledger spill slot next to {base}")

    def release(self) -> None:
        self._handle.close()


def default_spill_base(url: str, configured: str | None) -> Path:
    if configured:
        return Path(configured)
    if url.startswith("sqlite:///"):
        if ":memory:" in url:  # nothing outlives the process: keep the spill out of the way
            return Path(tempfile.gettempdir()) / f"spendgate-memory-ledger-{os.getpid()}.spill"
        return Path(url.removeprefix("sqlite:///") + ".spill")
    return Path(os.getcwd()) / "spendgate-ledger.spill"


class LedgerSink:
    """The accounting sink that hands each exchange's record (and access note) to the writer."""

    def __init__(self, writer: LedgerWriter, *, access_log: bool, log_content: bool) -> None:
        self._writer = writer
        self._access_log = access_log
        self._log_content = log_content

    def __call__(self, ex: Exchange) -> None:
        record = ledger_record(ex)
        note = access_note(ex, record, log_content=self._log_content) if self._access_log else None
        self._writer.submit(record, note)
