"""Prometheus metrics, on a registry of the app's own.

Money is exported in integer micro-dollars (``*_micro_usd_total``): a
counter's float holds integers exactly up to 2**53, i.e. $9 billion.
With ``--workers N`` the CLI points ``PROMETHEUS_MULTIPROC_DIR`` at a shared
folder and ``/metrics`` aggregates every worker's files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip
_LAG_BUCKETS = (
    0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
_PROXY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class CounterSync:
    """Feeds a Prometheus counter from a running total kept elsewhere (a writer, a store)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._seen = 0

    def to(self, total: int) -> None:
        if total > self._seen:
            self._counter.inc(total - self._seen)
            self._seen = total


class Children:
    """The children of one labelled metric, each looked up once per distinct label values.

    ``metric.labels(...)`` checks and joins the values and takes a lock on
    every call; the request path calls this instead, a dict lookup. It holds
    no more children than the metric itself does.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    """Every metric Spendgate exports. One instance per app."""

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        r = self.registry
        self.requests = Counter(
            "spendgate_requests_total",
            "Requests by endpoint, served model, provider and HTTP status",
            ["endpoint", "model", "provider", "status"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "spendgate_upstream_seconds",
            "Time spent waiting on the upstream provider",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.proxy_seconds = Histogram(
            "spendgate_proxy_seconds",
            "Time spent in the proxy itself (total minus upstream)",
            ["endpoint"],
            buckets=_PROXY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "spendgate_tokens_total",
            "Tokens billed, by tenant, served model, cache status and kind",
            ["tenant", "model", "cache", "kind"],
            registry=r,
        )
        money_labels = ["tenant", "model", "cache"]
        self.cost = Counter(
            "spendgate_cost_micro_usd_total", "Actual cost", money_labels, registry=r
        )
        self.baseline = Counter(
            "spendgate_baseline_micro_usd_total", "Baseline cost", money_labels, registry=r
        )
        self.savings = Counter(
            "spendgate_savings_micro_usd_total",
            "Savings of requests that saved",
            money_labels,
            registry=r,
        )
        self.overspend = Counter(
            "spendgate_overspend_micro_usd_total",
            "Negative savings (e.g. fallbacks to a pricier model)",
            money_labels,
            registry=r,
        )
        self.unknown_price = Counter(
            "spendgate_unknown_price_total",
            "Rows priced with no known price",
            ["model"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "spendgate_cache_lookups_total", "Cache lookups", ["tier"], registry=r
        )
        self.cache_hits = Counter(
            "spendgate_cache_hits_total", "Cache hits by type", ["type"], registry=r
        )
        self.cache_errors = Counter(
            "spendgate_cache_errors_total", "Cache backend errors and timeouts", registry=r
        )
        self.routes = Counter(
            "spendgate_route_decisions_total", "Routing decisions by tier", ["tier"], registry=r
        )
        self.fallbacks = Counter(
            "spendgate_fallbacks_total",
            "Attempts that moved to another model",
            ["from_model", "to_model"],
            registry=r,
        )
        self.retries = Counter(
            "spendgate_retries_total", "Retried upstream attempts", ["provider"], registry=r
        )
        self.circuit_state = Gauge(
            "spendgate_circuit_open",
            "1 when a provider+model circuit is open or half-open",
            ["target"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ledger_backlog = Gauge(
            "spendgate_ledger_backlog",
            "Ledger rows waiting to be written",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_spilled = Gauge(
            "spendgate_ledger_spill_pending",
            "Ledger rows in the spill file",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_spilled_total = Counter(
            "spendgate_ledger_spilled_total",
            "Ledger rows ever written to the spill file",
            registry=r,
        )
        self.access_lines_dropped_total = Counter(
            "spendgate_access_lines_dropped_total",
            "Access-log lines dropped because the ledger writer's queue was full "
            "(ledger rows are never dropped: they spill)",
            registry=r,
        )
        self.loop_lag = Histogram(
            "spendgate_event_loop_lag_seconds",
            "How late a 1 ms timer ran on the event loop (with server.loop_lag_probe)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.redis_up = Gauge(
            "spendgate_cache_backend_up",
            "1 when the cache backend answers",
            registry=r,
            multiprocess_mode="livemin",
        )

    def process_exiting(self) -> None:
        """Drop this worker's live gauges from the aggregate (multiprocess mode)."""
        if self._multiprocess_dir is not None:
            _multiprocess.mark_process_dead(os.getpid(), path=str(self._multiprocess_dir))  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        """The exposition text, aggregated over workers in multiprocess mode."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry, path=str(self._multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)
