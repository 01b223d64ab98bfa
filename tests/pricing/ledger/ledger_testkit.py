"""Row builders shared by the ledger tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pricing.ledger import LedgerRow, with_costs

BASE_TS = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)

PRICES = {
    "price_input": Decimal("2.5"),
    "price_cached_input": Decimal("1.25"),
    "price_cache_write": Decimal("3.125"),
    "price_output": Decimal("10"),
}
BASELINE_PRICES = {
    "baseline_price_input": Decimal("15"),
    "baseline_price_cached_input": Decimal("7.5"),
    "baseline_price_cache_write": Decimal("18.75"),
    "baseline_price_output": Decimal("60"),
}


def make_row(i: int, *, tenant: str = "acme", **overrides: Any) -> LedgerRow:
    """A priced row whose values vary with ``i``; overrides replace fields."""
    fields: dict[str, Any] = {
        "request_id": f"req-{tenant}-{i}",
        "ts": BASE_TS + timedelta(seconds=i, microseconds=i),
        "tenant": tenant,
        "key_id": "key_1",
        "agent": "support-bot",
        "requested_model": "gpt-4o",
        "served_model": "gpt-4o-mini",
        "baseline_model": "gpt-4o",
        "provider": "openai",
        "route_reason": "simple",
        "attempts": 1,
        "attempts_detail": '[{"model":"gpt-4o-mini","outcome":"ok"}]',
        "prompt_tokens": 1000 + i,
        "cached_prompt_tokens": i % 7,
        "completion_tokens": 100 + 3 * i,
        "usage_source": "upstream",
        "price_source": "catalog",
        "baseline_price_source": "catalog",
        "baseline_prompt_tokens": 1000 + i,
        "baseline_completion_tokens": 100 + 3 * i,
        "catalog_version": "2026-11-01",
        "upstream_ms": 120 + i,
        "proxy_ms": 3,
        **PRICES,
        **BASELINE_PRICES,
    }
    fields.update(overrides)
    return with_costs(LedgerRow(**fields))


@dataclass
class Backend:
    """A ledger URL plus raw SQL access for tampering with it behind its back."""

    kind: str
    url: str
    execute: Callable[[str], list[Any]]


def pg_url_for(schema: str, *, host: str = "127.0.0.1", port: int = 5432) -> str:
    return f"postgresql://postgres@{host}:{port}/test?options=-csearch_path%3D{schema}"
