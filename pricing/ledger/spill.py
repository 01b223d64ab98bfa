"""Local spill file: rows the database could not take yet, as JSON lines.

Appends go to the end; replay reads from a cursor in file order and, once
everything has landed, truncates the file. Replaying a row twice is harmless
because the store ignores request_ids it already holds, so the cursor need not
be durable: after a crash the whole file is simply replayed again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import COLUMNS, decode, encode

log = logging.getLogger(__name__)


def row_to_line(row: LedgerRow) -> bytes:
    """One JSON line holding the row's exact database values."""
    record = dict(zip(COLUMNS, encode(row), strict=True))
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def line_to_row(line: bytes) -> LedgerRow:
    record = json.loads(line)
    return decode([record.get(name) for name in COLUMNS])


class SpillFile:
    """Thread-safe append/replay of rows in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._offset = 0
        self.appended_total = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pending = self._recover()

    def _recover(self) -> int:
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # A crash cut the last line short; terminate it so later appends
            # start on a line of their own and replay can set it aside.
            with self.path.open("ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
        return sum(1 for line in data.splitlines() if line.strip())

    @property
    def pending(self) -> int:
        """Rows in the file not yet replayed."""
        return self._pending

    def append(self, rows: Iterable[LedgerRow], *, fsync: bool) -> None:
        """Append rows in order; with ``fsync`` they survive a power loss."""
        data = b"".join(row_to_line(r) for r in rows)
        if not data:
            return
        n = data.count(b"\n")
        with self._lock, self.path.open("ab") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            self._pending += n
            self.appended_total += n

    def sync(self) -> None:
        """Force earlier unsynced appends to disk."""
        with self._lock:
            if self.path.exists():
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def read_batch(self, limit: int) -> tuple[list[LedgerRow], int, int]:
        """Up to ``limit`` rows from the cursor: (rows, next offset, lines consumed)."""
        with self._lock:
            rows: list[LedgerRow] = []
            pos, consumed = self._offset, 0
            if not self.path.exists():
                return rows, pos, consumed
            with self.path.open("rb") as f:
                f.seek(pos)
                while consumed < limit:
                    line = f.readline()
                    if not line.endswith(b"\n"):
                        break  # end of file, or a line still being appended
                    pos += len(line)
                    if line.strip():
                        consumed += 1
                        self._parse_into(rows, line)
            return rows, pos, consumed

    def _parse_into(self, rows: list[LedgerRow], line: bytes) -> None:
        try:
            rows.append(line_to_row(line))
        except (ValueError, TypeError, KeyError, AttributeError):
            self._reject(line)
            log.error("unreadable spill line moved to %s", self.rejected_path)

    @property
    def rejected_path(self) -> Path:
        """Where rows that can never be written are kept for a person to look at."""
        return self.path.with_name(self.path.name + ".rejected")

    def reject(self, row: LedgerRow) -> None:
        """Set aside a row the store refuses for a reason other than availability."""
        with self._lock:
            self._reject(row_to_line(row))

    def _reject(self, line: bytes) -> None:
        with self.rejected_path.open("ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def commit(self, offset: int, consumed: int) -> None:
        """Advance the cursor past replayed lines; empty the file when all landed."""
        with self._lock:
            self._offset = offset
            self._pending = max(0, self._pending - consumed)
            if not self.path.exists():
                self._offset, self._pending = 0, 0
                return
            if self._offset >= self.path.stat().st_size:
                with self.path.open("r+b") as f:
                    f.truncate(0)
                    f.flush()
                    os.fsync(f.fileno())
                self._offset = 0
                self._pending = 0
