"""The accounting stage: price the exchange, then record it."""

from __future__ import annotations

from proxy.exchange import Exchange
from proxy.metrics import Metrics


class MetricsAccounting:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def charge(self, ex: Exchange) -> None:
        return None

    def record(self, ex: Exchange) -> None:
        m = self._metrics
        total = ex.elapsed_s()
        m.requests.labels(ex.endpoint, ex.served_model or "", ex.provider or "", str(ex.status)).inc()
        if ex.provider is not None and ex.upstream_s:
            m.upstream_seconds.labels(ex.provider).observe(ex.upstream_s)
        m.proxy_seconds.labels(ex.endpoint).observe(max(0.0, total - ex.upstream_s))
