"""Inline SVG charts drawn on the server: no script, no external asset.

Values are plotted as given (integers for money, fractions for rates); only
pixel positions are floats. Every text that reaches the markup is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 92, 16, 12, 40
Number = int | float
Formatter = Callable[[Number], str]


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart; ``css`` names its colour class in the page's style."""

    name: str
    css: str
    values: Sequence[Number]


def int_ticks(values: Sequence[int], *, count: int = 4) -> list[int]:
    """Evenly spaced integer ticks on a 1-2-5 step covering ``values`` and zero."""
    lo, hi = min([0, *values]), max([0, *values])
    span = max(hi - lo, 1)
    k = 0
    while (step := (1, 2, 5)[k % 3] * 10 ** (k // 3)) * count < span:
        k += 1
    ticks = [(lo // step) * step]
    while ticks[-1] < hi or len(ticks) < 2:
        ticks.append(ticks[-1] + step)
    return ticks


def _y(value: Number, lo: Number, hi: Number) -> float:
    span = (hi - lo) or 1
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - lo) / span)


def _x(index: int, count: int) -> float:
    inner = WIDTH - LEFT - RIGHT
    return LEFT + (inner * (index + 0.5) / count if count else 0.0)


def _axes(ticks: Sequence[Number], labels: Sequence[str], fmt: Formatter) -> list[str]:
    lo, hi = ticks[0], ticks[-1]
    parts = []
    for tick in ticks:
        y = _y(tick, lo, hi)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{_x(i, len(labels)):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return parts


def line_chart(
    series: Sequence[Series],
    labels: Sequence[str],
    *,
    ticks: Sequence[Number],
    fmt: Formatter,
    title: str,
) -> str:
    """A line chart of ``series`` over the x positions ``labels``, with a legend."""
    lo, hi = ticks[0], ticks[-1]
    parts = _axes(ticks, labels, fmt)
    for s in series:
        points = " ".join(
            f"{_x(i, len(labels)):.1f},{_y(v, lo, hi):.1f}" for i, v in enumerate(s.values)
        )
        parts.append(f'<polyline class="line {escape(s.css)}" points="{points}"/>')
        for i, v in enumerate(s.values):
            parts.append(
                f'<circle class="dot {escape(s.css)}" cx="{_x(i, len(labels)):.1f}" '
                f'cy="{_y(v, lo, hi):.1f}" r="2.5"><title>'
                f"{escape(f'{labels[i]} {s.name}: {fmt(v)}')}</title></circle>"
            )
    return _frame(parts, series, title)


def stacked_bars(
    series: Sequence[Series],
    labels: Sequence[str],
    *,
    ticks: Sequence[Number],
    fmt: Formatter,
    title: str,
) -> str:
    """Vertical bars, one per label, stacking the (non-negative) series in order."""
    lo, hi = ticks[0], ticks[-1]
    parts = _axes(ticks, labels, fmt)
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    for i, label in enumerate(labels):
        base: Number = 0
        for s in series:
            value = s.values[i]
            top, bottom = _y(base + value, lo, hi), _y(base, lo, hi)
            parts.append(
                f'<rect class="bar {escape(s.css)}" x="{_x(i, len(labels)) - slot * 0.35:.1f}" '
                f'y="{top:.1f}" width="{slot * 0.7:.1f}" height="{max(bottom - top, 0):.1f}">'
                f"<title>{escape(f'{label} {s.name}: {fmt(value)}')}</title></rect>"
            )
            base += value
    return _frame(parts, series, title)


def _frame(parts: list[str], series: Sequence[Series], title: str) -> str:
    legend = "".join(f'<span class="key {escape(s.css)}">{escape(s.name)}</span>' for s in series)
    return (
        f'<figure class="chart"><figcaption>{escape(title)} {legend}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"{''.join(parts)}</svg></figure>"
    )
