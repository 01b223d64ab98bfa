"""The rollup's latency histograms: fixed buckets, and a dense text form for storage.

Buckets are 1 ms wide below 100 ms, then 5 % of their lower edge wide; a
histogram is keyed by bucket index (position in :data:`LATENCY_BOUNDS`) and
stored as ``"first:count,count,..."``.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import add


def _latency_bounds() -> tuple[int, ...]:
    bounds = list(range(100))
    lower = 100
    # Up to about an hour; slower requests share the last, open-ended bucket.
    while lower < 3_600_000:
        bounds.append(lower)
        lower += lower // 20
    return tuple(bounds)


LATENCY_BOUNDS = _latency_bounds()


def latency_index(ms: int) -> int:
    """The index in :data:`LATENCY_BOUNDS` of the bucket holding ``ms``."""
    return max(bisect_right(LATENCY_BOUNDS, ms) - 1, 0)


def latency_bucket(ms: int) -> int:
    """The lower edge of the histogram bucket holding ``ms``."""
    return LATENCY_BOUNDS[latency_index(ms)]


def encode_hist(hist: dict[int, int]) -> str:
    """``"first:count,count,..."``: dense counts from bucket index ``first`` on.

    Dense, so a reader merges a cell with C-level ``split``/``map`` calls
    instead of one Python step per bucket.
    """
    if not hist:
        return ""
    first, last = min(hist), max(hist)
    return f"{first}:" + ",".join(str(hist.get(i, 0)) for i in range(first, last + 1))


def decode_hist(text: str) -> dict[int, int]:
    """Inverse of :func:`encode_hist` (non-zero buckets only)."""
    if not text:
        return {}
    first, _, body = text.partition(":")
    start = int(first)
    return {start + i: n for i, n in enumerate(map(int, body.split(","))) if n}


def add_hist(dense: list[int], text: str) -> None:
    """Add an encoded histogram into ``dense`` (one count per bucket index)."""
    if not text:
        return
    first, _, body = text.partition(":")
    start = int(first)
    end = start + body.count(",") + 1
    dense[start:end] = map(add, dense[start:end], map(int, body.split(",")))
