"""Where the ledger writer's batches are stored: the interface, and the in-process backend.

A backend takes a batch of records (or of spill-file lines being replayed)
and the batch's *notes* (opaque companions the owner wants handled with it,
such as access-log lines), handles the notes, then checks and stores the
rows. It answers how many rows it set aside as refused, or raises a
``SpendgateError`` when the database is unavailable: then nothing was stored
and the writer spills the batch.

:class:`StoreBackend` does this in a worker thread of the calling process;
the proxy's default runs the same steps in a separate process
(``proxy.server.ledger_process``), so that hashing, rollups and SQL never compete
with the event loop for the GIL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pricing.ledger.record import Record, checked_records, record_line
from pricing.ledger.spill import RejectFile
from pricing.ledger.store import LedgerStore
from proxy.errors import SpendgateError

log = logging.getLogger(__name__)

NoteHandler = Callable[[Sequence[Any]], None]


class WriteBackend(Protocol):
    """Stores the writer's batches; every method may be slow and never blocks the loop."""

    async def write(self, records: Sequence[Record], notes: Sequence[Any]) -> int:
        """Handle ``notes``, then store ``records``; the number of rows refused."""
        ...

    async def replay(self, lines: Sequence[bytes], notes: Sequence[Any]) -> int:
        """Handle ``notes``, then store the rows of spill-file ``lines``; the number refused."""
        ...

    async def emit(self, notes: Sequence[Any]) -> None:
        """Handle ``notes`` alone (their rows went to the spill file)."""
        ...

    async def aclose(self) -> None:
        """Release whatever the backend holds."""
        ...


def store_records(store: LedgerStore, records: Sequence[Record], rejects: RejectFile) -> int:
    """Write checked ``records``; set aside any the store refuses; the number set aside (blocking).

    A ``SpendgateError`` means the database is unavailable and propagates
    (the rows will be retried). Any other error means some row itself is
    refused: the rows are then written one by one and the refused ones go to
    the rejected file, so one bad row cannot hold up the others forever.
    """
    if not records:
        return 0
    try:
        store.write_records(records)
        return 0
    except SpendgateError:
        raise
    except Exception:
        log.exception("ledger batch refused; writing its %d rows one by one", len(records))
    refused = 0
    for record in records:
        try:
            store.write_records([record])
        except SpendgateError:
            raise
        except Exception:
            log.exception("ledger row %s refused, kept in %s", record[0], rejects.path)
            rejects.add(record_line(record))
            refused += 1
    return refused


def handle_notes(handler: NoteHandler | None, notes: Sequence[Any]) -> None:
    """Run the note handler; its failure never stops rows from being stored."""
    if handler is None or not notes:
        return
    try:
        handler(notes)
    except Exception:
        log.exception("could not handle %d ledger notes", len(notes))


def write_batch(
    store: LedgerStore,
    *,
    rejects: RejectFile,
    records: Sequence[Record] = (),
    lines: Sequence[bytes] = (),
) -> int:
    """Check ``records`` and ``lines`` into rows and store them; the number refused (blocking)."""
    unreadable = 0

    def reject(line: bytes) -> None:
        nonlocal unreadable
        log.error("unreadable ledger row kept in %s", rejects.path)
        rejects.add(line)
        unreadable += 1

    checked = checked_records(records=records, lines=lines, reject=reject)
    return unreadable + store_records(store, checked, rejects)


class StoreBackend:
    """Runs each batch in a worker thread of this process, against ``store``."""

    def __init__(
        self, store: LedgerStore, *, rejects: RejectFile, on_notes: NoteHandler | None = None
    ) -> None:
        self._store = store
        self._rejects = rejects
        self._on_notes = on_notes

    def _run(self, records: Sequence[Record], lines: Sequence[bytes], notes: Sequence[Any]) -> int:
        handle_notes(self._on_notes, notes)
        return write_batch(self._store, rejects=self._rejects, records=records, lines=lines)

    async def write(self, records: Sequence[Record], notes: Sequence[Any]) -> int:
        """See :meth:`WriteBackend.write`."""
        return await asyncio.to_thread(self._run, records, (), notes)

    async def replay(self, lines: Sequence[bytes], notes: Sequence[Any]) -> int:
        """See :meth:`WriteBackend.replay`."""
        return await asyncio.to_thread(self._run, (), lines, notes)

    async def emit(self, notes: Sequence[Any]) -> None:
        """See :meth:`WriteBackend.emit`."""
        if notes:
            await asyncio.to_thread(handle_notes, self._on_notes, notes)

    async def aclose(self) -> None:
        """Nothing to release: the store belongs to the caller."""
