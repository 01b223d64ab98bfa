"""From a finished exchange to a ledger row, and the writer that stores it.

The money in the response headers is exactly the money on the invoice: both
come from ``pricing.ledger.costs_from``, the arithmetic ``spendgate audit``
uses to recompute every row.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import IO

from pricing.cost import UnitPrices
from pricing.ledger import LedgerRow, LedgerWriter, costs_from
from pricing.usage import Usage
from proxy.exchange import Charges, Exchange, Pricing

_SOURCES = frozenset({"catalog", "override", "config", "unknown"})
_NO_USAGE = Usage(source="none")
MAX_SPILL_SLOTS = 64


def _prices(prices: UnitPrices | None, source: str) -> dict[str, Decimal | None]:
    known = prices is not None and source != "unknown"
    return {
        "input": prices.input if known and prices else None,
        "cached_input": prices.cached_input if known and prices else None,
        "cache_write": prices.cache_write if known and prices else None,
        "output": prices.output if known and prices else None,
    }


def _attempts_detail(ex: Exchange) -> str:
    return json.dumps(
        [
            {"model": a.model, "provider": a.provider, "outcome": a.outcome, "error": a.error_type,
             "status": a.status, "ms": round(a.ms)}
            for a in ex.attempts
        ],
        separators=(",", ":"),
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


def ledger_row(ex: Exchange) -> LedgerRow:
    """The exchange's one ledger row, built once it is finished."""
    pricing, charges = ex.pricing, ex.charges or charges_of(ex, ex.pricing)
    usage = pricing.usage if pricing else _NO_USAGE
    base = pricing.baseline_usage if pricing else _NO_USAGE
    source = pricing.price_source if pricing and pricing.price_source in _SOURCES else "unknown"
    base_source = pricing.baseline_price_source if pricing else "unknown"
    served = _prices(pricing.prices if pricing else None, source)
    baseline = _prices(pricing.baseline_prices if pricing else None, base_source)
    tags = ex.tags
    total_ms = int(ex.elapsed_s() * 1000)
    upstream_ms = int(ex.upstream_s * 1000) if ex.upstream_s else None
    return LedgerRow(
        request_id=ex.request_id,
        ts=ex.received_at,
        tenant=ex.tenant,
        key_id=ex.principal.key_id if ex.principal else None,
        agent=tags.agent, workflow=tags.workflow, step=tags.step, run=tags.run,
        requested_model=ex.requested_model,
        served_model=ex.served_model or "",
        baseline_model=pricing.baseline_model if pricing else "",
        provider=ex.provider or "",
        cache_status=ex.cache_status,  # type: ignore[arg-type]
        route_reason=ex.route_reason,
        attempts=len(ex.attempts),
        attempts_detail=_attempts_detail(ex),
        prompt_tokens=usage.prompt_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        completion_tokens=usage.completion_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        usage_source=usage.source,
        price_source=source,  # type: ignore[arg-type]
        price_input=served["input"], price_cached_input=served["cached_input"],
        price_cache_write=served["cache_write"], price_output=served["output"],
        baseline_prompt_tokens=base.prompt_tokens,
        baseline_cached_prompt_tokens=base.cached_prompt_tokens,
        baseline_cache_creation_tokens=base.cache_creation_tokens,
        baseline_completion_tokens=base.completion_tokens,
        baseline_price_input=baseline["input"], baseline_price_cached_input=baseline["cached_input"],
        baseline_price_cache_write=baseline["cache_write"], baseline_price_output=baseline["output"],
        baseline_price_source=base_source,  # type: ignore[arg-type]
        overhead_cost=ex.overhead_micro,
        cost=charges.cost, baseline_cost=charges.baseline_cost, savings=charges.savings,
        catalog_version=pricing.catalog_version if pricing else "",
        upstream_ms=upstream_ms,
        proxy_ms=max(0, total_ms - (upstream_ms or 0)),
        http_status=ex.status,
        error_type=ex.error_type,
    )  # fmt: skip


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
    """The accounting sink that writes rows through the background writer."""

    def __init__(self, writer: LedgerWriter) -> None:
        self._writer = writer

    def __call__(self, ex: Exchange) -> None:
        self._writer.submit(ledger_row(ex))
