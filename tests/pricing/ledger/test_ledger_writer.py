"""The background writer: batching, spill on failure, replay, shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from pricing.ledger import LedgerRow, LedgerStore, LedgerWriter, audit, open_ledger
from pricing.ledger.backend import StoreBackend
from pricing.ledger.record import record_of
from pricing.ledger.spill import RejectFile, SpillFile, line_to_row
from tests.pricing.ledger.ledger_testkit import make_row, pg_url_for

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], what: str) -> None:
    with anyio.fail_after(20):
        while not condition():
            await anyio.sleep(0.005)
    assert condition(), what


def _writer(store: LedgerStore, tmp_path: Path, *, max_pending: int = 10000) -> LedgerWriter:
    spill_path = tmp_path / "spill" / "ledger.jsonl"
    return LedgerWriter(
        StoreBackend(store, rejects=RejectFile.beside(spill_path)),
        spill_path=spill_path,
        max_pending=max_pending,
        batch_size=50,
        flush_interval_s=0.01,
        max_backoff_s=0.1,
    )


async def test_close_flushes_everything(store: LedgerStore, tmp_path: Path) -> None:
    writer = _writer(store, tmp_path)
    writer.start()
    for i in range(1234):
        writer.submit(record_of(make_row(i)))
    assert writer.backlog > 0
    await writer.close()
    assert store.count() == 1234
    assert (writer.written_total, writer.backlog, writer.spilled_total) == (1234, 0, 0)
    assert audit(store).ok


async def test_rows_beyond_the_bound_go_to_the_spill_file(tmp_path: Path) -> None:
    store = open_ledger(f"sqlite:///{tmp_path}/l.db")
    writer = _writer(store, tmp_path, max_pending=10)
    for i in range(100):
        writer.submit(record_of(make_row(i)))
    # submit does no I/O: the overflow waits in memory for the writer's task.
    assert (writer.backlog, writer.spill_pending, writer.spilled_total) == (100, 0, 0)
    writer.start()
    await _until(lambda: writer.spilled_total == 90, "overflow spilled off the loop")
    await writer.close()
    assert store.count() == 100 and writer.spill_pending == 0
    assert (tmp_path / "spill" / "ledger.jsonl").stat().st_size == 0
    assert audit(store).ok
    store.close()


async def test_locked_sqlite_spills_then_replays(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = open_ledger(f"sqlite:///{path}", sqlite_busy_timeout_s=0.02)
    writer = _writer(store, tmp_path)
    writer.start()
    for i in range(30):
        writer.submit(record_of(make_row(i)))
    await _until(lambda: store.count() == 30, "first rows written")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for i in range(30, 200):
        writer.submit(record_of(make_row(i)))
        if i % 25 == 0:
            await anyio.sleep(0.01)
    await _until(lambda: writer.spill_pending > 0, "rows spilled while locked")
    assert store.count() == 30
    blocker.execute("COMMIT")
    blocker.close()
    for i in range(200, 260):
        writer.submit(record_of(make_row(i)))
    await writer.flush()
    assert store.count() == 260 and writer.spill_pending == 0
    assert writer.spilled_total > 0 and writer.written_total == 260
    await writer.close()
    chain = list(store.iter_chain())
    # Spilled rows land in submission order, so the chain follows it.
    assert [r.request_id for r in chain] == [make_row(i).request_id for i in range(260)]
    assert audit(store).ok
    store.close()


async def test_close_while_database_is_down_keeps_rows_for_the_next_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    store = open_ledger(f"sqlite:///{path}", sqlite_busy_timeout_s=0.02)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    writer = _writer(store, tmp_path)
    writer.start()
    for i in range(120):
        writer.submit(record_of(make_row(i)))
    await writer.close()
    assert writer.spill_pending == 120 and writer.backlog == 0
    blocker.execute("ROLLBACK")
    blocker.close()
    # A second process starting later finds the spill file and replays it.
    second = _writer(store, tmp_path)
    assert second.spill_pending == 120
    second.start()
    second.submit(record_of(make_row(120)))
    await second.close()
    assert store.count() == 121 and second.spill_pending == 0
    assert audit(store).ok
    store.close()


async def test_replay_is_idempotent_and_skips_torn_lines(tmp_path: Path) -> None:
    store = open_ledger(f"sqlite:///{tmp_path}/l.db")
    store.write_batch([make_row(i) for i in range(5)])
    spill_path = tmp_path / "spill" / "ledger.jsonl"
    SpillFile(spill_path).append([make_row(i) for i in range(8)], fsync=True)
    with spill_path.open("ab") as f:
        f.write(b'{"request_id": "torn')
    writer = _writer(store, tmp_path)
    assert writer.spill_pending == 9
    writer.start()
    await writer.close()
    assert store.count() == 8 and writer.spill_pending == 0
    assert spill_path.with_name("ledger.jsonl.rejected").read_bytes().startswith(b'{"request_id')
    assert audit(store).ok
    store.close()


class _Forwarder:
    """A TCP relay to PostgreSQL that the test can cut and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._relays = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        await _until(lambda: self._relays == 0, "relays finished")

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._relays += 1
        try:
            await self._connect_and_pipe(reader, writer)
        finally:
            self._relays -= 1

    async def _connect_and_pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.mark.postgres
async def test_postgres_outage_mid_load_loses_no_row(pg_schema: str, tmp_path: Path) -> None:
    forwarder = _Forwarder(5432)
    await forwarder.start()
    url = pg_url_for(pg_schema, port=forwarder.port)
    # Blocking calls go to a thread: the forwarder runs on this event loop.
    store = await anyio.to_thread.run_sync(lambda: open_ledger(url, connect_timeout_s=1))
    writer = _writer(store, tmp_path)
    writer.start()
    total = 600
    try:
        for i in range(total):
            writer.submit(record_of(make_row(i, tenant="t1" if i % 3 else "t2")))
            if i % 20 == 0:
                await anyio.sleep(0.01)
            if i == 200:
                await _until(lambda: writer.written_total > 0, "rows written before the cut")
                await forwarder.cut()
            if i == 400:
                await _until(lambda: writer.spill_pending > 0, "rows spilled during the cut")
                await forwarder.start()
        await writer.flush()
        await writer.close()
    finally:
        await anyio.to_thread.run_sync(store.close)
        await forwarder.cut()
    direct = open_ledger(pg_url_for(pg_schema))
    try:
        assert direct.count() == total
        assert writer.spilled_total > 0 and writer.spill_pending == 0
        assert audit(direct).ok
    finally:
        direct.close()


class _RefusingStore:
    """A real SQLite store that refuses one row for a reason other than availability."""

    def __init__(self, inner: LedgerStore, refused: str) -> None:
        self.inner = inner
        self.refused = refused

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_batch(self, rows: Sequence[LedgerRow]) -> int:
        if any(r.request_id == self.refused for r in rows):
            raise ValueError("row refused")
        return self.inner.write_batch(rows)

    def write_records(self, records: Sequence[tuple[Any, ...]]) -> int:
        if any(r[0] == self.refused for r in records):
            raise ValueError("row refused")
        return self.inner.write_records(records)


async def test_a_refused_row_is_set_aside_without_holding_up_the_rest(tmp_path: Path) -> None:
    store = open_ledger(f"sqlite:///{tmp_path}/l.db")
    refusing = _RefusingStore(store, make_row(4).request_id)
    writer = _writer(refusing, tmp_path)
    writer.start()
    for i in range(10):
        writer.submit(record_of(make_row(i)))
    await writer.close()
    assert store.count() == 9 and writer.rejected_total == 1 and writer.spill_pending == 0
    rejected = (tmp_path / "spill" / "ledger.jsonl.rejected").read_bytes().splitlines()
    assert [line_to_row(x).request_id for x in rejected] == [make_row(4).request_id]
    assert audit(store).ok
    store.close()
