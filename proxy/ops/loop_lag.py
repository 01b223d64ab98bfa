"""How late the event loop runs a 1 ms timer: the wait every request shares.

Anything that holds the loop (a slow callback, a long batch, another thread
holding the GIL) delays every timer and every ready socket by the same
amount. The probe keeps one 1 ms timer armed at all times and observes, each
time it fires, how much later than due it ran, into
``spendgate_event_loop_lag_seconds``. It is off unless
``server.loop_lag_probe`` is set: a thousand wake-ups a second are cheap
(well under 1 % of a core) but not free.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram

PROBE_INTERVAL_S = 0.001


class LoopLagProbe:
    """Re-arms a timer every ``interval_s`` and records how late each one fired."""

    def __init__(self, histogram: Histogram, *, interval_s: float = PROBE_INTERVAL_S) -> None:
        self._observe = histogram.observe
        self._interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Arm the first timer on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        due = time.perf_counter() + self._interval_s
        self._handle = self._loop.call_later(self._interval_s, self._fired, due)

    def _fired(self, due: float) -> None:
        # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
        self._observe(max(0.0, time.perf_counter() - due))
        self._arm()

    def stop(self) -> None:
        """Disarm the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
