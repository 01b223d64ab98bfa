"""The mutable state of one simulator instance: counters, armed faults, pacing.

One ``SimState`` lives on each app (never at module level), so several
simulators in one process do not share counts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from proxy.demo.simulator.faults import FaultBook, FaultMode


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Fixed behaviour chosen when the simulator starts."""

    delay_ms: int = 0  # added before every answer, like a real model's latency
    timeout_s: float = 30.0  # how long the ``timeout`` fault holds a request
    require_auth: bool = True  # 401 when the provider's key header is absent


@dataclass(slots=True)
class Stats:
    """Request counts since start or the last reset."""

    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    streams: int = 0
    cancelled: int = 0

    def as_json(self) -> dict[str, Any]:
        """The counters as the stats endpoint reports them."""
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_model": dict(self.by_model),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "faults": dict(self.faults),
            "streams": self.streams,
            "cancelled": self.cancelled,
        }


class SimState:
    """Everything a request handler reads or updates."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.faults = FaultBook()
        self._ids = itertools.count(1)
        # Set when the server stops, so held requests (timeout, slow) let go.
        self.stopping = asyncio.Event()

    def next_id(self, prefix: str) -> str:
        """A fresh identifier, unique in this instance and repeatable across runs."""
        return f"{prefix}sim{next(self._ids):010d}"

    def record(self, endpoint: str, model: str | None, *, stream: bool) -> None:
        """Count one API request (``model`` without its fault suffix)."""
        self.stats.requests += 1
        self.stats.by_endpoint[endpoint] += 1
        if model is not None:
            self.stats.by_model[model] += 1
        if stream:
            self.stats.streams += 1

    def count_cancelled(self) -> None:
        """A client left before its answer was complete."""
        self.stats.cancelled += 1

    def record_fault(self, mode: FaultMode) -> None:
        """Count one injected fault."""
        self.stats.faults[mode.value] += 1

    def reset(self) -> None:
        """Zero the counters and disarm every fault."""
        self.stats = Stats()
        self.faults.clear()
