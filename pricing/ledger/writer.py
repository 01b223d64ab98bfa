"""Background ledger writer: the request path hands rows over and moves on.

``submit`` only appends to an in-memory queue (or, past ``max_pending``, to
the spill file) and never raises. A task on the event loop batches the queue
into the store from a worker thread. When the store fails, the batch goes to
the spill file (fsync'd) and the writer retries with exponential backoff;
while the spill file holds rows, new batches are appended behind them so rows
land in the order they were spilled. Rows that overflowed the in-memory bound
go straight to the spill file and may therefore land before older queued rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from pathlib import Path

from pricing.ledger.row import LedgerRow
from pricing.ledger.spill import SpillFile
from pricing.ledger.store import LedgerStore
from proxy.errors import SpendgateError

log = logging.getLogger(__name__)

_MIN_BACKOFF_S = 0.05


class LedgerWriter:
    """Batches rows into a :class:`LedgerStore` without ever losing one.

    Call ``submit`` from the event loop's thread only.
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        spill_path: Path,
        max_pending: int = 10000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._store = store
        self._spill = SpillFile(spill_path)
        self._queue: deque[LedgerRow] = deque()
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_backoff_s = max_backoff_s
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._inflight = 0
        self.written_total = 0
        self.failures_total = 0
        self.rejected_total = 0

    # Metrics ----------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Rows in memory not yet written (queued plus the batch in flight)."""
        return len(self._queue) + self._inflight

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

    def submit(self, row: LedgerRow) -> None:
        """Hand one row over; never blocks on the database and never raises."""
        try:
            if self._closed or len(self._queue) >= self._max_pending:
                self._spill.append([row], fsync=self._closed)
                return
            self._queue.append(row)
            if len(self._queue) >= self._batch_size and self._wake is not None:
                self._wake.set()
        except Exception:
            log.exception("ledger row %s could not be queued or spilled", row.request_id)

    async def close(self) -> None:
        """Write everything out (or spill it, fsync'd) and stop."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        while self._queue or self._spill.pending:
            if not await self._step():
                await self._spill_queue()
                break
        if self._queue:
            log.error("ledger closed with %d rows neither written nor spilled", len(self._queue))
        await asyncio.to_thread(self._spill.sync)
        self._closed = True

    async def flush(self) -> None:
        """Wait until the queue and the spill file are empty (tests, admin)."""
        while (self._queue or self._spill.pending or self._inflight) and not self._stopping:
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
        if self._spill.pending:
            if await self._replay_once():
                return True
            batch = self._take_batch()
            if batch:
                await self._to_spill(batch)
            return False
        batch = self._take_batch()
        if not batch:
            return True
        self._inflight = len(batch)
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception as exc:
            log.warning("ledger store failed, spilling %d rows: %s", len(batch), exc)
            await self._to_spill(batch)
            return False
        finally:
            self._inflight = 0
        self.written_total += len(batch)
        return True

    def _take_batch(self) -> list[LedgerRow]:
        return [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]

    async def _to_spill(self, batch: list[LedgerRow]) -> None:
        try:
            await asyncio.to_thread(self._spill.append, batch, fsync=True)
        except OSError:
            # The spill file failed too: keep the rows in memory, oldest first.
            self._queue.extendleft(reversed(batch))
            log.exception("ledger spill file failed; %d rows kept in memory", len(batch))

    def _write(self, rows: list[LedgerRow]) -> None:
        """Write rows (in a worker thread); set aside any the store refuses.

        A ``SpendgateError`` means the database is unavailable and propagates
        (the rows will be retried). Any other error means some row itself is
        refused: the rows are then written one by one and the refused ones go
        to the rejected file, so one bad row cannot hold up the others forever.
        """
        try:
            self._store.write_batch(rows)
            return
        except SpendgateError:
            raise
        except Exception:
            log.exception("ledger batch refused; writing its %d rows one by one", len(rows))
        for row in rows:
            try:
                self._store.write_batch([row])
            except SpendgateError:
                raise
            except Exception:
                log.exception(
                    "ledger row %s refused, kept in %s", row.request_id, self._spill.rejected_path
                )
                self._spill.reject(row)
                self.rejected_total += 1

    async def _replay_once(self) -> bool:
        rows, offset, consumed = await asyncio.to_thread(self._spill.read_batch, self._batch_size)
        try:
            if rows:
                await asyncio.to_thread(self._write, rows)
        except Exception as exc:
            log.warning("ledger store still failing, %d rows spilled: %s", self.spill_pending, exc)
            return False
        await asyncio.to_thread(self._spill.commit, offset, consumed)
        self.written_total += len(rows)
        return True

    async def _spill_queue(self) -> None:
        rows = list(self._queue)
        self._queue.clear()
        await self._to_spill(rows)
