"""The dashboard's reporting window: a named period or a custom [from, to)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from proxy.errors import RequestError
from proxy.ops.periods import parse_instant

PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_PERIOD = "24h"
# Bucket widths a custom window may use: the first giving at most MAX_BUCKETS.
_WIDTHS = tuple(timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 180, 360, 720, 1440, 10080, 43200))
MAX_BUCKETS = 60


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in UTC, the chart's bucket width and how the window was asked for."""

    period: str
    start: datetime
    end: datetime
    bucket: timedelta

    def query(self) -> dict[str, str]:
        """Query parameters that select this window again."""
        if self.period != "custom":
            return {"period": self.period}
        return {"period": "custom", "from": _iso(self.start), "to": _iso(self.end)}


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bucket_width(span: timedelta) -> timedelta:
    """The narrowest standard width that cuts ``span`` into at most MAX_BUCKETS."""
    for width in _WIDTHS:
        if span / width <= MAX_BUCKETS:
            return width
    return span / MAX_BUCKETS


def window_for(
    period: str | None,
    *,
    now: datetime,
    start: str | None = None,
    end: str | None = None,
) -> Window:
    """The window of ``period`` (1h, 24h, 7d, 30d or custom with from/to) ending at ``now``.

    Named periods end at the next whole minute, so repeated loads within a
    minute show the same numbers.
    """
    name = period or DEFAULT_PERIOD
    if name == "custom":
        if not start or not end:
            raise RequestError("period=custom needs 'from' and 'to'", param="from")
        begin, finish = parse_instant(start, param="from"), parse_instant(end, param="to")
        if finish <= begin:
            raise RequestError("'to' must be after 'from'", param="to")
        return Window("custom", begin, finish, bucket_width(finish - begin))
    span = PERIODS.get(name)
    if span is None:
        raise RequestError(
            f"period must be one of {', '.join([*PERIODS, 'custom'])}", param="period"
        )
    finish = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return Window(name, finish - span, finish, bucket_width(span))
