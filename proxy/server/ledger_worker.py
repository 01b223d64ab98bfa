"""The ledger writer process: stores the proxy's ledger batches off its event loop.

``proxy.server.ledger_process`` starts it with one end of a socket pair and talks to
it in frames (a 4-byte big-endian length, then a pickle; both ends are this
program). The first frame is its :class:`WorkerOptions`; each later one is a
request, answered by exactly one reply:

* ``("write", records, notes)`` and ``("replay", lines, notes)``: write the
  notes' access lines, then check and store the rows; reply ``("ok", refused)``,
  or ``("unavailable", message)`` when the database is away (nothing stored);
* ``("emit", notes)``: only the access lines; ``("close",)``: exit.

It ignores SIGINT and SIGTERM: the proxy decides when it stops, after its
last flush, and an end of file on the socket (the proxy is gone) stops it too.
It runs at a lower CPU priority than the proxy, so a batch never holds up the
event loop on a shared core.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pricing.ledger.backend import NoteHandler, handle_notes, write_batch
from pricing.ledger.factory import open_ledger
from pricing.ledger.spill import RejectFile
from pricing.ledger.store import LedgerStore
from proxy.errors import SpendgateError
from proxy.ops.access_log import write_lines

log = logging.getLogger("spendgate.ledger")

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What the writer process needs: where to write, and how."""

    url: str
    rejected_path: str
    access_log: bool
    nice: int = 5
    sqlite_busy_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0


def frame(message: Any) -> bytes:
    """One message, framed for the socket."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def read_frame(stream: IO[bytes]) -> Any:
    """The next message from a blocking stream; None at end of file."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"ledger frame of {size} bytes refused")
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)


class Worker:
    """Answers the proxy's requests against one ledger store."""

    def __init__(self, options: WorkerOptions, *, store: LedgerStore | None = None) -> None:
        self._store = store or open_ledger(
            options.url,
            create=False,
            sqlite_busy_timeout_s=options.sqlite_busy_timeout_s,
            connect_timeout_s=options.connect_timeout_s,
        )
        self._rejects = RejectFile(Path(options.rejected_path))
        self._on_notes: NoteHandler | None = write_lines if options.access_log else None

    def handle(self, message: tuple[Any, ...]) -> tuple[str, Any]:
        """The reply to one request."""
        kind = message[0]
        if kind == "emit":
            handle_notes(self._on_notes, message[1])
            return ("ok", 0)
        if kind not in ("write", "replay"):
            return ("error", f"unknown request {kind!r}")
        items, notes = message[1], message[2]
        handle_notes(self._on_notes, notes)
        try:
            if kind == "write":
                refused = write_batch(self._store, rejects=self._rejects, records=items)
            else:
                refused = write_batch(self._store, rejects=self._rejects, lines=items)
        except SpendgateError as exc:
            return ("unavailable", str(exc))
        return ("ok", refused)

    def close(self) -> None:
        self._store.close()


def _yield_to_the_proxy(nice: int) -> None:
    """Run below the proxy: a lower priority, and never preempting it on wake-up.

    The proxy's event loop and this process share the CPU the proxy was
    pinned to; a batch must not make requests wait. ``SCHED_BATCH`` keeps
    this process's fair share (it must keep up at full load) but marks it as
    a batch job, which the scheduler does not let preempt a running task.
    """
    if nice:
        os.nice(nice)
    if hasattr(os, "SCHED_BATCH"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError:  # not permitted here: the lower priority still applies
            log.debug("SCHED_BATCH not available")


def serve(sock: socket.socket) -> None:
    """Answer requests on ``sock`` until ``close`` or end of file."""
    with sock, sock.makefile("rb") as incoming:
        options = read_frame(incoming)
        if not isinstance(options, WorkerOptions):
            return
        _yield_to_the_proxy(options.nice)
        worker = Worker(options)
        try:
            while (message := read_frame(incoming)) is not None and message[0] != "close":
                sock.sendall(frame(worker.handle(message)))
        finally:
            worker.close()


def main(fd: int) -> None:
    """Entry point of the writer process (see ``proxy.server.ledger_process``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s spendgate ledger writer: %(message)s",
    )
    serve(socket.socket(fileno=fd))
