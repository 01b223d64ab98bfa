"""Background ledger writer: the request path hands records over and moves on.

``submit`` only appends a record (see ``pricing.ledger.record``) to an
in-memory queue and never raises or does I/O. A task on the event loop takes
batches from the queue and hands them to a backend (``pricing.ledger.backend``),
which stores them off the loop: in a worker thread, or in the proxy's
separate writer process. A batch the backend could not store goes to the
spill file (fsync'd) and the writer retries with exponential backoff; while
the spill file holds rows, new batches are appended behind them so rows land
in the order they were spilled.

Past ``max_pending`` queued records, new ones go to the spill file from a
worker thread and may therefore land before older queued rows. Only after
``close`` does ``submit`` write the spill file itself.

A record stays in memory until the backend has answered for it, so a
backend that dies mid-batch loses nothing: the batch is tried again (stores
ignore request ids they already hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from pathlib import Path
from typing import Any

from pricing.ledger.backend import WriteBackend
from pricing.ledger.record import Record, record_line
from pricing.ledger.spill import SpillFile

log = logging.getLogger(__name__)

_MIN_BACKOFF_S = 0.05


class LedgerWriter:
    """Batches records into a :class:`WriteBackend` without ever losing one.

    Call ``submit`` from the event loop's thread only.
    """

    def __init__(
        self,
        backend: WriteBackend,
        *,
        spill_path: Path,
        max_pending: int = 10000,
        batch_size: int = 500,
        flush_interval_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._backend = backend
        self._spill = SpillFile(spill_path)
        self._queue: deque[Record] = deque()
        self._overflow: list[Record] = []
        self._notes: list[Any] = []
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_backoff_s = max_backoff_s
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._overflow_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._inflight = 0
        self.written_total = 0
        self.failures_total = 0
        self.rejected_total = 0
        self.notes_dropped = 0

    # Metrics ----------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Records in memory not yet written (queued, overflowing, and the batch in flight)."""
        return len(self._queue) + len(self._overflow) + self._inflight

    @property
    def spilled_total(self) -> int:
        """Rows ever appended to the spill file by this writer."""
        return self._spill.appended_total

    @property
    def spill_pending(self) -> int:
        """Rows in the spill file still waiting for the database."""
        return self._spill.pending

    # Lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Start the background task (call from inside the running loop)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")
            if self._overflow:
                self._start_overflow()

    def submit(self, record: Record, note: Any = None) -> None:
        """Hand one record (and its note, if any) over; never blocks, never raises."""
        try:
            if note is not None:
                if len(self._notes) < self._max_pending:
                    self._notes.append(note)
                else:
                    self.notes_dropped += 1
            if self._closed:
                self._spill.append_lines([record_line(record)], fsync=True)
                return
            if len(self._queue) >= self._max_pending:
                self._overflow.append(record)
                self._start_overflow()
                return
            self._queue.append(record)
            if len(self._queue) >= self._batch_size and self._wake is not None:
                self._wake.set()
        except Exception:
            log.exception("ledger record %r could not be queued or spilled", record[:1])

    async def close(self) -> None:
        """Write everything out (or spill it, fsync'd), stop, and close the backend."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._overflow_task is not None:
            await self._overflow_task
        await self._drain_overflow(attempts=1)
        while self._queue or self._spill.pending:
            if not await self._step():
                await self._spill_queue()
                break
        if self._notes:
            await self._emit(self._take_notes())
        if self._queue:
            log.error("ledger closed with %d rows neither written nor spilled", len(self._queue))
        await asyncio.to_thread(self._spill.sync)
        self._closed = True
        await self._backend.aclose()

    async def flush(self) -> None:
        """Wait until every record is written or spilled and replayed (tests, admin)."""
        while (
            self._queue or self._overflow or self._spill.pending or self._inflight or self._notes
        ) and not self._stopping:
            if self._wake is not None:
                self._wake.set()
            await asyncio.sleep(0.01)

    # Loop -------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.0
        while not self._stopping:
            if len(self._queue) < self._batch_size and not self._spill.pending:
                await self._sleep(self._flush_interval_s)
            if self._stopping:
                return
            try:
                ok = await self._step()
            except Exception:
                log.exception("ledger writer step failed")
                ok = False
            if ok:
                backoff = 0.0
                continue
            self.failures_total += 1
            backoff = min(self._max_backoff_s, max(_MIN_BACKOFF_S, backoff * 2))
            await self._back_off(backoff)

    async def _back_off(self, seconds: float) -> None:
        # New rows must not cut the pause short (that would hammer a failing
        # database at the request rate); only shutdown does.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping and (remaining := deadline - loop.time()) > 0:
            await self._sleep(remaining)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _step(self) -> bool:
        """Write one batch; False when the store failed (rows are then spilled).

        While the spill file holds rows they are replayed first; only when the
        store still fails is the next queued batch moved behind them, which
        keeps memory bounded during an outage and preserves landing order.
        """
        notes = self._take_notes()
        if self._spill.pending:
            if await self._replay_once(notes):
                return True
            batch = self._take_batch()
            if batch:
                await self._to_spill(batch)
            return False
        batch = self._take_batch()
        if not batch:
            await self._emit(notes)
            return True
        self._inflight = len(batch)
        try:
            refused = await self._backend.write(batch, notes)
        except Exception as exc:
            log.warning("ledger store failed, spilling %d rows: %s", len(batch), exc)
            await self._to_spill(batch)
            return False
        finally:
            self._inflight = 0
        self._count(len(batch), refused)
        return True

    def _count(self, rows: int, refused: int) -> None:
        self.written_total += rows - refused
        self.rejected_total += refused

    def _take_batch(self) -> list[Record]:
        return [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]

    def _take_notes(self) -> list[Any]:
        notes, self._notes = self._notes, []
        return notes

    async def _emit(self, notes: list[Any]) -> None:
        if not notes:
            return
        try:
            await self._backend.emit(notes)
        except Exception:  # notes are a by-product: they must never stop the rows
            log.exception("could not hand %d ledger notes to the backend", len(notes))

    async def _to_spill(self, batch: list[Record]) -> None:
        try:
            await asyncio.to_thread(self._append_records, batch)
        except OSError:
            # The spill file failed too: keep the rows in memory, oldest first.
            self._queue.extendleft(reversed(batch))
            log.exception("ledger spill file failed; %d rows kept in memory", len(batch))

    def _append_records(self, batch: list[Record]) -> None:
        self._spill.append_lines([record_line(r) for r in batch], fsync=True)

    async def _replay_once(self, notes: list[Any]) -> bool:
        lines, offset, consumed = await asyncio.to_thread(self._spill.read_lines, self._batch_size)
        try:
            refused = await self._backend.replay(lines, notes)
        except Exception as exc:
            log.warning("ledger store still failing, %d rows spilled: %s", self.spill_pending, exc)
            return False
        await asyncio.to_thread(self._spill.commit, offset, consumed)
        self._count(len(lines), refused)
        return True

    async def _spill_queue(self) -> None:
        rows = list(self._queue)
        self._queue.clear()
        await self._to_spill(rows)

    # Overflow ---------------------------------------------------------------
    def _start_overflow(self) -> None:
        if self._overflow_task is None and self._task is not None:
            loop = asyncio.get_running_loop()
            self._overflow_task = loop.create_task(self._overflow_loop(), name="ledger-overflow")

    async def _drain_overflow(self, *, attempts: int | None = None) -> None:
        """Move overflowing records to the spill file, off the loop."""
        failures = 0
        while self._overflow and (attempts is None or failures < attempts):
            batch, self._overflow = self._overflow, []
            try:
                await asyncio.to_thread(self._append_records, batch)
            except OSError:
                self._overflow[:0] = batch
                failures += 1
                log.exception("ledger spill file failed; %d rows kept in memory", len(batch))
                await asyncio.sleep(_MIN_BACKOFF_S * failures)

    async def _overflow_loop(self) -> None:
        try:
            await self._drain_overflow()
        finally:
            self._overflow_task = None
