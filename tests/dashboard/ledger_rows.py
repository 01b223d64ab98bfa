"""A small ledger with hand-computed aggregates, shared by the dashboard tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pricing.ledger import LedgerRow

T0 = datetime(2026, 11, 10, tzinfo=UTC)
END = T0 + timedelta(hours=4)
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Spec:
    minutes: float
    tenant: str
    agent: str | None
    workflow: str | None
    step: str | None
    requested: str
    served: str
    cache: str
    money: tuple[int, int, int] | None  # cost, baseline, savings; None = unpriced
    upstream_ms: int | None
    proxy_ms: int
    error: str | None = None


SPECS: tuple[Spec, ...] = (
    Spec(10, "t1", "a", "w", "s1", "gpt-4o", "gpt-4o-mini", "miss", (100, 300, 200), 10, 0),
    Spec(20, "t1", "a", "w", "s2", "gpt-4o", "gpt-4o", "exact", (0, 300, 300), None, 20),
    Spec(90, "t2", "a", "w", "s1", "gpt-4o", "gpt-4o", "miss", (50, 50, 0), 25, 5, "upstream_error"),
    Spec(125, "t1", "a", "w2", "s1", "gpt-4o-mini", "gpt-4o-mini", "semantic", (0, 40, 40), None, 40),
    Spec(180, "t1", "b", None, None, "gpt-4o", "gpt-4o", "miss", None, 90, 10),
    Spec(240, "t1", "b", None, None, "gpt-4o", "gpt-4o", "miss", (999, 999, 0), 1, 1),
    Spec(-1e-6, "t1", "a", "w", "s1", "gpt-4o", "gpt-4o", "miss", (888, 888, 0), 1, 1),
    Spec(190, "t1", None, "w", "s2", "gpt-4o-mini", "gpt-4o-mini", "miss", (7, 7, 0), 3, 1,
         "rate_limit_error"),
)  # fmt: skip


def make_row(i: int, spec: Spec, **overrides: Any) -> LedgerRow:
    """Row ``i`` of the table above: ``10 * (i + 1)`` prompt and ``i + 1`` completion tokens."""
    cost, baseline, savings = spec.money if spec.money else (None, None, None)
    fields: dict[str, Any] = {
        "request_id": f"req-{i}-{spec.minutes}",
        "ts": T0 + timedelta(minutes=spec.minutes),
        "tenant": spec.tenant,
        "agent": spec.agent,
        "workflow": spec.workflow,
        "step": spec.step,
        "requested_model": spec.requested,
        "served_model": spec.served,
        "baseline_model": spec.requested,
        "cache_status": spec.cache,
        "prompt_tokens": 10 * (i + 1),
        "completion_tokens": i + 1,
        "cost": cost,
        "baseline_cost": baseline,
        "savings": savings,
        "upstream_ms": spec.upstream_ms,
        "proxy_ms": spec.proxy_ms,
        "http_status": 502 if spec.error else 200,
        "error_type": spec.error,
    }
    fields.update(overrides)
    return LedgerRow(**fields)


def sample_rows() -> list[LedgerRow]:
    return [make_row(i, spec) for i, spec in enumerate(SPECS)]
