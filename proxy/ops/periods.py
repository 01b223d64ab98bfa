"""Reporting periods given on the command line and in admin query strings."""

from __future__ import annotations

from datetime import UTC, date, datetime

from proxy.errors import RequestError


def parse_instant(text: str, *, param: str) -> datetime:
    """``2026-11-01`` (midnight UTC) or an ISO-8601 date-time (naive means UTC)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise RequestError(
            f"{param}: not an ISO-8601 date or date-time: {text[:40]!r}", param=param
        ) from exc
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    if start.month == 12:
        return datetime(start.year + 1, 1, 1, tzinfo=UTC)
    return datetime(start.year, start.month + 1, 1, tzinfo=UTC)


def window(
    start: str | None, end: str | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[start, end); both default to the current calendar month (UTC)."""
    current = month_start(now or datetime.now(UTC))
    begin = parse_instant(start, param="from") if start else current
    finish = parse_instant(end, param="to") if end else next_month(month_start(begin))
    if finish <= begin:
        raise RequestError("'to' must be after 'from'", param="to")
    return begin, finish
