"""One request's state as it moves through the pipeline's stages.

authenticate -> cache lookup -> route -> upstream -> account

Each stage reads what the earlier ones wrote here and adds its own part; the
accounting stage turns the finished exchange into a ledger row, metrics and
the cost headers.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pricing.cost import UnitPrices
from pricing.usage import Usage
from proxy.config import ModelConfig
from proxy.pipeline.auth import Principal
from proxy.pipeline.request import Tags
from routing.retry import AttemptRecord


class RequestIds:
    """Unique request ids: a random per-process prefix and a counter.

    ``os.urandom`` per request costs a system call; this costs an increment.
    """

    def __init__(self) -> None:
        self._prefix = "sg-" + os.urandom(8).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


@dataclass(frozen=True, slots=True)
class Target:
    """A configured model and the provider that serves it."""

    model: ModelConfig
    provider: str

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model.name}"


@dataclass(frozen=True, slots=True)
class Charges:
    """What the accounting stage computed, in integer micro-dollars."""

    cost: int | None  # None: the served model's price is unknown
    baseline_cost: int | None
    savings: int | None


@dataclass(frozen=True, slots=True)
class Pricing:
    """Everything a ledger row needs to recompute its money."""

    usage: Usage
    prices: UnitPrices
    price_source: str
    baseline_model: str
    baseline_usage: Usage
    baseline_prices: UnitPrices
    baseline_price_source: str
    catalog_version: str


@dataclass(slots=True)
class Exchange:
    endpoint: str
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    principal: Principal | None = None
    client_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""
    requested_model: str = ""
    stream: bool = False
    include_usage: bool = False
    tags: Tags = field(default_factory=Tags)
    # Written by the routing stage.
    target: Target | None = None
    fallbacks: tuple[Target, ...] = ()
    route_reason: str = ""
    route_tier: str | None = None
    estimated_prompt_tokens: int | None = None
    budget_reservation: Any = None
    # Written by the cache stage.
    cache_mode: Any = None
    cache_key: str | None = None
    flight: Any = None
    semantic_probe: Any = None
    cache_status: str = "miss"
    cache_similarity: float | None = None
    cached_body: bytes | None = None  # a hit's stored JSON, sent as it is
    overhead_micro: int = 0
    # Written by the upstream stage.
    attempts: list[AttemptRecord] = field(default_factory=list)
    usage: Usage | None = None
    completion_chars: int = 0
    upstream_s: float = 0.0
    # Written at the end.
    status: int = 200
    error_type: str | None = None
    charges: Charges | None = None
    pricing: Pricing | None = None

    @property
    def tenant(self) -> str:
        return self.principal.tenant if self.principal else "unauthenticated"

    @property
    def served_model(self) -> str | None:
        return self.target.model.name if self.target else None

    @property
    def provider(self) -> str | None:
        return self.target.provider if self.target else None

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started
