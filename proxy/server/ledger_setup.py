"""The ledger behind the accounting stage: its store, its writer and what they report.

A ledger that is down at start-up does not stop the proxy: rows spill to disk
until it answers. The writer runs in a process of its own
(``proxy.server.ledger_process``), or in a thread for an in-memory ledger,
which no other process can see.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pricing.ledger import LedgerStore, LedgerWriter, load_keys, open_ledger
from pricing.ledger.backend import StoreBackend, WriteBackend
from pricing.ledger.spill import RejectFile
from proxy.errors import SpendgateError
from proxy.ops.access_log import log_lines
from proxy.pipeline.accounting import Accountant
from proxy.pipeline.auth import Authenticator
from proxy.pipeline.ledger_sink import LedgerSink, SpillSlot, default_spill_base
from proxy.pipeline.metrics import CounterSync, Metrics
from proxy.server.hooks import Closer, Probe, Refresher
from proxy.server.ledger_process import ProcessBackend
from proxy.server.ledger_worker import WorkerOptions
from proxy.settings import Settings

log = logging.getLogger("spendgate")

# How often a running proxy reads the stored keys again (each read is one query; on
# PostgreSQL, one connection): how long a revoked key may still be accepted.
KEY_RELOAD_S = 10.0


@dataclass(frozen=True, slots=True)
class Ledger:
    """The open ledger and what the app keeps of it."""

    store: LedgerStore
    stored_keys: list[tuple[str, str, str]]
    close: Closer
    probe: Probe
    gauges: Callable[[], None]


async def start_ledger(settings: Settings, *, accountant: Accountant, metrics: Metrics) -> Ledger:
    """Open the ledger, start its writer as the accountant's sink, load stored keys."""
    ledger = settings.config.ledger
    try:
        store = await asyncio.to_thread(open_ledger, ledger.url)
    except SpendgateError as exc:
        log.warning(
            "ledger unavailable at start-up (%s): rows will spill until it answers", exc.code
        )
        store = await asyncio.to_thread(open_ledger, ledger.url, create=False)
    slot = SpillSlot(default_spill_base(ledger.url, ledger.spill_path))
    backend = await _ledger_backend(settings, store, rejects=RejectFile.beside(slot.path))
    writer = LedgerWriter(backend, spill_path=slot.path, max_pending=ledger.max_pending)
    writer.start()
    server = settings.config.server
    accountant.add_sink(
        LedgerSink(writer, access_log=server.access_log, log_content=server.log_content)
    )
    stored_keys: list[tuple[str, str, str]] = []
    try:
        stored_keys = await asyncio.to_thread(load_keys, store)
    except SpendgateError:
        log.warning("could not load stored proxy keys from the ledger")

    async def close() -> None:
        await writer.close()
        await asyncio.to_thread(store.close)
        slot.release()

    return Ledger(
        store=store,
        stored_keys=stored_keys,
        close=close,
        probe=_ledger_probe(store, writer),
        gauges=ledger_gauges(writer, metrics),
    )


def _ledger_probe(store: LedgerStore, writer: LedgerWriter) -> Probe:
    async def probe() -> dict[str, Any]:
        try:
            await asyncio.wait_for(asyncio.to_thread(store.chain_heads, tenant="-"), 2.0)
            up = True
        except (SpendgateError, TimeoutError):
            up = False
        # Not critical: rows spill to disk while the database is away.
        return {
            "ok": up,
            "critical": False,
            "backlog": writer.backlog,
            "spill_pending": writer.spill_pending,
        }

    return probe


def stored_key_reloader(
    store: LedgerStore, auth: Authenticator, *, every_s: float = KEY_RELOAD_S
) -> Refresher:
    """Reads the active stored keys again, at most every ``every_s`` seconds, so that a
    key created or revoked with the CLI takes effect without a restart, and keys stored
    while the database was away at start-up are found when it returns."""
    failing = False
    next_at = time.monotonic() + every_s  # the keys were just loaded at start-up

    async def reload() -> None:
        nonlocal failing, next_at
        if time.monotonic() < next_at:
            return
        next_at = time.monotonic() + every_s
        try:
            keys = await asyncio.to_thread(load_keys, store)
        except Exception:  # any failure to read keeps the keys loaded; the proxy goes on
            if not failing:  # once per outage, not every few seconds
                log.warning("could not reload stored proxy keys; keeping the ones loaded")
            failing = True
            return
        if failing:
            log.warning("stored proxy keys readable again")
        failing = False
        auth.set_stored_keys(keys)

    return reload


def ledger_gauges(writer: LedgerWriter, metrics: Metrics) -> Callable[[], None]:
    """What the metrics show of the writer, read whenever /metrics is rendered."""
    spilled = CounterSync(metrics.ledger_spilled_total)
    dropped = CounterSync(metrics.access_lines_dropped_total)

    def gauges() -> None:
        metrics.ledger_backlog.set(writer.backlog)
        metrics.ledger_spilled.set(writer.spill_pending)
        spilled.to(writer.spilled_total)
        dropped.to(writer.notes_dropped)

    return gauges


async def _ledger_backend(
    settings: Settings, store: LedgerStore, *, rejects: RejectFile
) -> WriteBackend:
    """The writer process; a worker thread only for an in-memory ledger, which no
    other process can see."""
    url = settings.config.ledger.url
    if url == "sqlite:///:memory:":
        return StoreBackend(store, rejects=rejects, on_notes=log_lines)
    options = WorkerOptions(
        url=url, rejected_path=str(rejects.path), access_log=settings.config.server.access_log
    )
    backend = ProcessBackend(options)
    await backend.start()
    return backend
