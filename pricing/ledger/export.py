"""Streamed CSV export of ledger rows: one line per request.

RFC 4180: comma separated, CRLF line ends, fields quoted only when they hold
a comma, quote or line break, UTF-8 without a byte-order mark. Money is USD
with exactly six decimal places; unit prices are plain decimals (USD per 1M
tokens); timestamps are ISO-8601 UTC with microseconds and "Z"; absent
values are empty fields. The rows are read in chunks, so a month of traffic
never sits in memory.

Spreadsheet-safe (OWASP's CSV-injection guidance): a text field that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run as a
formula by Excel, LibreOffice or Google Sheets, so it gets a leading ``'``,
which they read as "this cell is text". Text fields are the ones a client
can write (tags, model names, route reasons, error types...). Numbers are
written by the proxy itself and stay numbers, negative savings included.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import BinaryIO

from pricing.cost import format_micro
from pricing.ledger.chain import iso_z
from pricing.ledger.row import LedgerRow
from pricing.ledger.schema import COLUMNS
from pricing.ledger.store import LedgerStore

MONEY_COLUMNS = ("overhead_cost", "cost", "baseline_cost", "savings")

CSV_COLUMNS: tuple[str, ...] = tuple(f"{c}_usd" if c in MONEY_COLUMNS else c for c in COLUMNS)
"""The stable header of the export, in order."""

_CHUNK_ROWS = 500


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """``text`` as a cell no spreadsheet will evaluate as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_cell(name: str, value: object) -> str:
    """One field of a row as exported."""
    if value is None:
        return ""
    if name in MONEY_COLUMNS and isinstance(value, int):
        return format_micro(value)
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):  # token counts, status codes: numbers the proxy wrote
        return str(value)
    return spreadsheet_text(str(value))


def csv_lines(rows: Iterable[list[str]], *, header: Iterable[str]) -> Generator[bytes, None, None]:
    """RFC 4180 bytes for a header and rows, yielded in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(list(header))
    pending = 0
    for row in rows:
        writer.writerow(row)
        pending += 1
        if pending >= _CHUNK_ROWS:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _cells(rows: Iterable[LedgerRow]) -> Iterator[list[str]]:
    for row in rows:
        yield [csv_cell(name, getattr(row, name)) for name in COLUMNS]


def iter_csv(
    store: LedgerStore, *, start: datetime, end: datetime, tenant: str | None = None
) -> Generator[bytes, None, None]:
    """CSV bytes of rows with start <= ts < end (blocking; for the CLI)."""
    return csv_lines(
        _cells(store.iter_rows(start=start, end=end, tenant=tenant)), header=CSV_COLUMNS
    )


async def aiter_csv(
    store: LedgerStore, *, start: datetime, end: datetime, tenant: str | None = None
) -> AsyncIterator[bytes]:
    """The same bytes as :func:`iter_csv`, read off the event loop (HTTP streaming)."""
    chunks = iter_csv(store, start=start, end=end, tenant=tenant)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            yield chunk
    finally:
        # Closing the generator releases its database cursor and connection.
        await asyncio.to_thread(chunks.close)


def write_csv(
    store: LedgerStore,
    out: BinaryIO,
    *,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
) -> None:
    """Write the export to a binary file (``spendgate export --out FILE``)."""
    for chunk in iter_csv(store, start=start, end=end, tenant=tenant):
        out.write(chunk)
