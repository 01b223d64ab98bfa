"""Local spill file: rows the database could not take yet, as JSON lines.

Appends go to the end; replay reads raw lines from a cursor in file order
(whoever writes them to the database parses them) and, once everything has
landed, truncates the file. Replaying a row twice is harmless because the
store ignores request_ids it already holds, so the cursor need not be
durable: after a crash the whole file is simply replayed again. Only one
process owns a spill file; rows it can never store go to a separate
append-only *rejected* file (:class:`RejectFile`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import COLUMNS, decode, encode


def row_to_line(row: LedgerRow) -> bytes:
    """One JSON line holding the row's exact database values."""
    record = dict(zip(COLUMNS, encode(row), strict=True))
    return json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def line_to_row(line: bytes) -> LedgerRow:
    """The row one spill line holds; ValueError (or TypeError) when it holds none."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("a spill line must be a JSON object")
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
        self.append_lines([row_to_line(r) for r in rows], fsync=fsync)

    def append_lines(self, lines: Iterable[bytes], *, fsync: bool) -> None:
        """Append newline-terminated lines in order; with ``fsync`` they survive a power loss."""
        data = b"".join(lines)
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

    def read_lines(self, limit: int) -> tuple[list[bytes], int, int]:
        """Up to ``limit`` lines from the cursor: (lines, next offset, lines consumed)."""
        with self._lock:
            lines: list[bytes] = []
            pos = self._offset
            if not self.path.exists():
                return lines, pos, 0
            with self.path.open("rb") as f:
                f.seek(pos)
                while len(lines) < limit:
                    line = f.readline()
                    if not line.endswith(b"\n"):
                        break  # end of file, or a line still being appended
                    pos += len(line)
                    if line.strip():
                        lines.append(line)
            return lines, pos, len(lines)

    @property
    def rejected_path(self) -> Path:
        """Where rows that can never be written are kept for a person to look at."""
        return RejectFile.beside(self.path).path

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


class RejectFile:
    """Append-only, fsync'd lines a person has to look at: rows the store refuses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def beside(cls, spill_path: Path) -> RejectFile:
        """The rejected file that goes with a spill file."""
        return cls(spill_path.with_name(spill_path.name + ".rejected"))

    def add(self, line: bytes) -> None:
        """Keep one line (newline-terminated) for good."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
