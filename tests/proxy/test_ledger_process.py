"""The ledger writer process: rows land, access lines are written, and killing it loses nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from pricing.ledger import LedgerWriter, audit, open_ledger
from pricing.ledger.record import RECORD_COLUMNS, record_of
from pricing.ledger.spill import RejectFile
from proxy.server.ledger_process import ProcessBackend
from proxy.server.ledger_worker import WorkerOptions
from tests.pricing.ledger.ledger_testkit import make_row

pytestmark = pytest.mark.anyio


async def _until(condition: Callable[[], bool], what: str, *, timeout_s: float = 30) -> None:
    with anyio.fail_after(timeout_s):
        while not condition():
            await anyio.sleep(0.01)
    assert condition(), what


def _setup(
    tmp_path: Path, *, access_log: bool = False, busy_timeout_s: float = 30.0
) -> tuple[Path, ProcessBackend, LedgerWriter]:
    db = tmp_path / "ledger.db"
    open_ledger(f"sqlite:///{db}").close()
    spill = tmp_path / "spill" / "ledger.spill"
    options = WorkerOptions(
        url=f"sqlite:///{db}",
        rejected_path=str(RejectFile.beside(spill).path),
        access_log=access_log,
        sqlite_busy_timeout_s=busy_timeout_s,
    )
    backend = ProcessBackend(options)
    writer = LedgerWriter(
        backend, spill_path=spill, batch_size=50, flush_interval_s=0.01, max_backoff_s=0.2
    )
    return db, backend, writer


async def test_rows_land_through_the_process_and_a_bad_record_is_set_aside(
    tmp_path: Path,
) -> None:
    db, backend, writer = _setup(tmp_path)
    await backend.start()
    writer.start()
    bad = list(record_of(make_row(999)))
    bad[RECORD_COLUMNS.index("tenant")] = ""
    for i in range(120):
        writer.submit(record_of(make_row(i, tenant="a" if i % 2 else "b")))
    writer.submit(tuple(bad))
    await writer.close()
    assert backend.pid is None  # closed with the writer
    store = open_ledger(f"sqlite:///{db}", create=False)
    try:
        assert store.count() == 120 and audit(store).ok
    finally:
        store.close()
    assert writer.written_total == 120 and writer.rejected_total == 1
    rejected = (tmp_path / "spill" / "ledger.spill.rejected").read_bytes().splitlines()
    assert [json.loads(line)["request_id"] for line in rejected] == [bad[0]]


async def test_access_lines_are_written_by_the_process(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _, _, writer = _setup(tmp_path, access_log=True)
    writer.start()
    for i in range(3):
        record = record_of(make_row(i))
        note = (record, 1_700_000_000.25, "chat", False, "small", 12.5, 0.75, True, True, None)
        writer.submit(record, note)
    await writer.close()
    lines = [json.loads(x) for x in capfd.readouterr().out.splitlines() if x.startswith("{")]
    assert [line["request_id"] for line in lines] == [make_row(i).request_id for i in range(3)]
    assert lines[0]["ts"] == "2023-11-14T22:13:20.250Z" and lines[0]["route_tier"] == "small"
    assert lines[0]["cost_usd"] == f"{make_row(0).cost / 1e6:.6f}"


async def test_a_writer_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    db, backend, writer = _setup(tmp_path)
    writer.start()
    for i in range(100):
        writer.submit(record_of(make_row(i)))
    await _until(lambda: writer.written_total == 100, "first rows written")
    # Hold the database so the next batch waits inside the writer process's transaction.
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(100, 160):
        writer.submit(record_of(make_row(i)))
    await _until(lambda: backend.busy, "a batch sent to the writer process")
    first = backend.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await _until(lambda: backend.pid not in (None, first) and backend.busy, "batch sent again")
    blocker.execute("ROLLBACK")
    blocker.close()
    await writer.flush()
    await writer.close()
    store = open_ledger(f"sqlite:///{db}", create=False)
    try:
        assert store.count() == 160 and audit(store).ok
        assert [r.request_id for r in store.iter_chain()] == [
            make_row(i).request_id for i in range(160)
        ]
    finally:
        store.close()
    assert backend.starts == 2 and writer.spilled_total == 0


async def test_a_batch_the_process_keeps_dying_on_is_spilled_then_replayed(
    tmp_path: Path,
) -> None:
    db, backend, writer = _setup(tmp_path)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(30):
        writer.submit(record_of(make_row(i)))
    killed: list[int] = []
    while len(killed) < 3:  # each attempt: wait for the batch to be out, then kill the process
        await _until(lambda: backend.busy and backend.pid not in killed, "batch sent")
        pid = backend.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    await _until(lambda: writer.spill_pending == 30, "batch spilled after the third death")
    blocker.execute("ROLLBACK")
    blocker.close()
    await writer.flush()
    await writer.close()
    store = open_ledger(f"sqlite:///{db}", create=False)
    try:
        assert store.count() == 30 and audit(store).ok
    finally:
        store.close()
    assert writer.spilled_total == 30 and writer.spill_pending == 0


async def test_rows_submitted_while_the_writer_is_killed_repeatedly_all_land(
    tmp_path: Path,
) -> None:
    db, backend, writer = _setup(tmp_path)
    writer.start()
    total = 3000
    kills = 0
    for i in range(total):
        writer.submit(record_of(make_row(i, tenant=f"t{i % 3}")))
        if i % 100 == 99:
            await anyio.sleep(0.005)
        if i % 700 == 350 and backend.pid is not None:
            os.kill(backend.pid, signal.SIGKILL)
            kills += 1
    await writer.flush()
    await writer.close()
    store = open_ledger(f"sqlite:///{db}", create=False)
    try:
        assert store.count() == total and audit(store).ok
    finally:
        store.close()
    assert kills >= 3 and backend.starts >= kills
