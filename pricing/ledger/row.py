"""One ledger row: everything needed to bill, explain and re-price one request.

A row is self-contained: its cost, baseline cost and savings can be recomputed
from its own token counts and unit prices, with no catalog at hand. Money is
integer micro-dollars; unit prices are Decimal USD per 1M tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pricing.cost import UnitPrices, cost_micro
from pricing.usage import Usage, UsageSource

CacheStatus = Literal["miss", "exact", "semantic", "bypass"]
PriceSource = Literal["catalog", "override", "config", "unknown"]

CACHE_STATUSES: frozenset[str] = frozenset({"miss", "exact", "semantic", "bypass"})
USAGE_SOURCES: frozenset[str] = frozenset({"upstream", "estimated", "none"})
PRICE_SOURCES: frozenset[str] = frozenset({"catalog", "override", "config", "unknown"})
CACHE_HITS: frozenset[str] = frozenset({"exact", "semantic"})

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One append-only record per proxied request, successful or failed.

    ``cost``/``baseline_cost``/``savings`` are ``None`` when the prices they
    need are unknown: such a row is never billed as if it were free. Use
    :func:`with_costs` to fill them from the row's own inputs. ``seq``,
    ``prev_hash`` and ``row_hash`` are assigned by the store at write time.
    Durations are integer milliseconds.
    """

    request_id: str
    ts: datetime
    tenant: str
    key_id: str | None = None
    agent: str | None = None
    workflow: str | None = None
    step: str | None = None
    run: str | None = None
    requested_model: str = ""
    served_model: str = ""
    baseline_model: str = ""
    provider: str = ""
    cache_status: CacheStatus = "miss"
    route_reason: str = ""
    attempts: int = 0
    attempts_detail: str = ""
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_creation_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: UsageSource = "none"
    price_source: PriceSource = "unknown"
    price_input: Decimal | None = None
    price_cached_input: Decimal | None = None
    price_cache_write: Decimal | None = None
    price_output: Decimal | None = None
    baseline_prompt_tokens: int = 0
    baseline_cached_prompt_tokens: int = 0
    baseline_cache_creation_tokens: int = 0
    baseline_completion_tokens: int = 0
    baseline_price_input: Decimal | None = None
    baseline_price_cached_input: Decimal | None = None
    baseline_price_cache_write: Decimal | None = None
    baseline_price_output: Decimal | None = None
    baseline_price_source: PriceSource = "unknown"
    overhead_cost: int = 0
    cost: int | None = None
    baseline_cost: int | None = None
    savings: int | None = None
    catalog_version: str = ""
    upstream_ms: int | None = None
    proxy_ms: int = 0
    http_status: int = 200
    error_type: str | None = None
    seq: int | None = None
    prev_hash: str | None = None
    row_hash: str | None = None

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("LedgerRow.ts must be timezone-aware")
        if self.ts.tzinfo is not UTC:
            object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        if not self.request_id or not self.tenant:
            raise ValueError("LedgerRow needs a request_id and a tenant")
        _check_choice("cache_status", self.cache_status, CACHE_STATUSES)
        _check_choice("usage_source", self.usage_source, USAGE_SOURCES)
        _check_choice("price_source", self.price_source, PRICE_SOURCES)
        _check_choice("baseline_price_source", self.baseline_price_source, PRICE_SOURCES)
        for name, declared in _FIELD_TYPES:
            _check_type(name, declared, getattr(self, name))

    @property
    def unit_prices(self) -> UnitPrices | None:
        """Prices of the served model, or None when any of them is unknown."""
        return _prices(
            self.price_input, self.price_output, self.price_cached_input, self.price_cache_write
        )

    @property
    def baseline_unit_prices(self) -> UnitPrices | None:
        """Prices of the baseline model, or None when any of them is unknown."""
        return _prices(
            self.baseline_price_input,
            self.baseline_price_output,
            self.baseline_price_cached_input,
            self.baseline_price_cache_write,
        )

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens,
            cache_creation_tokens=self.cache_creation_tokens,
            reasoning_tokens=self.reasoning_tokens,
            source=self.usage_source,
        )

    @property
    def baseline_usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.baseline_prompt_tokens,
            completion_tokens=self.baseline_completion_tokens,
            cached_prompt_tokens=self.baseline_cached_prompt_tokens,
            cache_creation_tokens=self.baseline_cache_creation_tokens,
        )


_FIELD_TYPES: tuple[tuple[str, str], ...] = tuple((f.name, str(f.type)) for f in fields(LedgerRow))


@dataclass(frozen=True, slots=True)
class RowCosts:
    cost: int | None
    baseline_cost: int | None
    savings: int | None


def costs_from(
    *,
    cache_status: str,
    overhead_cost: int,
    usage: Usage,
    prices: UnitPrices | None,
    baseline_usage: Usage,
    baseline_prices: UnitPrices | None,
) -> RowCosts:
    """The ledger's arithmetic: cost, baseline cost and savings from their inputs.

    ``prices`` / ``baseline_prices`` are None when unknown: that amount is then
    None (never $0). A hit on Spendgate's own cache costs only its overhead.
    """
    if cache_status in CACHE_HITS:
        cost: int | None = overhead_cost
    else:
        cost = None if prices is None else cost_micro(usage, prices) + overhead_cost
    baseline = None if baseline_prices is None else cost_micro(baseline_usage, baseline_prices)
    savings = None if cost is None or baseline is None else baseline - cost
    return RowCosts(cost=cost, baseline_cost=baseline, savings=savings)


def expected_costs(row: LedgerRow) -> RowCosts:
    """Recompute cost, baseline cost and savings from the row's own inputs.

    An "unknown" price source yields no amount even if prices are present, so
    a row cannot claim a price it says it does not know. An answer served from
    Spendgate's own cache ("exact" or "semantic") cost only its overhead: its
    tokens and prices are kept to show what the upstream call would have cost.
    """
    return costs_from(
        cache_status=row.cache_status,
        overhead_cost=row.overhead_cost,
        usage=row.usage,
        prices=row.unit_prices if row.price_source != "unknown" else None,
        baseline_usage=row.baseline_usage,
        baseline_prices=(
            row.baseline_unit_prices if row.baseline_price_source != "unknown" else None
        ),
    )


def with_costs(row: LedgerRow) -> LedgerRow:
    """``row`` with cost, baseline_cost and savings computed from its inputs."""
    c = expected_costs(row)
    return replace(row, cost=c.cost, baseline_cost=c.baseline_cost, savings=c.savings)


def _prices(
    input_: Decimal | None,
    output: Decimal | None,
    cached_input: Decimal | None,
    cache_write: Decimal | None,
) -> UnitPrices | None:
    if input_ is None or output is None or cached_input is None or cache_write is None:
        return None
    return UnitPrices(
        input=input_, output=output, cached_input=cached_input, cache_write=cache_write
    )


def _check_type(name: str, declared: str, value: object) -> None:
    # A wrong type (a float price, a bool count) would make the row's hash
    # or its arithmetic inexact, so it is refused where the row is built.
    if value is None:
        if "None" not in declared:
            raise ValueError(f"LedgerRow.{name} is required")
        return
    if declared.startswith("Decimal"):
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            raise ValueError(f"LedgerRow.{name} must be a finite, non-negative Decimal price")
    elif declared.startswith("int"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"LedgerRow.{name} must be an int")
    elif declared != "datetime" and not isinstance(value, str):
        raise ValueError(f"LedgerRow.{name} must be a str")


def _check_choice(name: str, value: str, allowed: frozenset[str]) -> None:
    if value not in allowed:
        raise ValueError(f"LedgerRow.{name} must be one of {sorted(allowed)}, not {value!r}")
