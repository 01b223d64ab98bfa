"""The config file's schema: pydantic models, validated once at start-up.

Names here are public (users write them in YAML); add keys, never rename.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Tier = Literal["small", "medium", "large"]
RoutingMode = Literal["off", "auto-only", "downgrade"]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024


_NESTED_NAMES = {
    "cache": {"enabled": "cache_enabled", "namespace": "cache_namespace"},
    "cache.semantic": {"threshold": "semantic_threshold"},
    "routing": {"mode": "routing_mode", "baseline_model": "baseline_model"},
}


def _flatten_overrides(data: Any) -> Any:
    """Accept per-tenant (or per-key) overrides spelled like the top-level sections.

    ``{cache: {enabled: false, namespace: shared, semantic: {threshold: 0.95}},
    routing: {mode: downgrade, baseline_model: gpt-4o}}`` is the same as
    ``{cache_enabled: false, cache_namespace: shared, semantic_threshold: 0.95,
    routing_mode: downgrade, baseline_model: gpt-4o}``. A key with no flat twin
    is kept under its dotted path, so validation reports it as unknown.
    """
    if not isinstance(data, dict):
        return data
    flat = dict(data)
    for section in ("cache", "routing"):
        nested = flat.pop(section, None)
        if nested is None:
            continue
        if not isinstance(nested, dict):
            flat[section] = nested  # let validation name the problem
            continue
        for key, value in nested.items():
            path = f"{section}.{key}"
            if path in _NESTED_NAMES and isinstance(value, dict):
                for inner, inner_value in value.items():
                    target = _NESTED_NAMES[path].get(inner, f"{path}.{inner}")
                    flat[target] = inner_value
            else:
                flat[_NESTED_NAMES[section].get(key, path)] = value
    return flat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    type: str
    base_url: str
    api_key: str | None = None
    forward_client_key: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=600.0, gt=0)
    max_connections: int = Field(default=512, gt=0)

    @field_validator("api_key")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class PriceConfig(_Strict):
    """USD per 1M tokens; overrides the catalog for one model."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    provider: str
    upstream: str | None = None
    tier: Tier | None = None
    price: PriceConfig | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name


class RoutingConfig(_Strict):
    mode: RoutingMode = "auto-only"
    baseline_model: str | None = None
    # Share of the strong tier's measured quality routed traffic keeps (routing/weights.json).
    quality_target: float = Field(default=0.95, ge=0.8, le=1.0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    deadline_s: float = Field(default=120.0, gt=0)
    retry_base_s: float = Field(default=0.25, ge=0)
    retry_cap_s: float = Field(default=4.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)
    # Budgets, breakers and rate limits in Redis: slower than a cache lookup may be.
    state_timeout_ms: int = Field(default=1000, gt=0)
    budgets_fail_open: bool = True


class SemanticConfig(_Strict):
    enabled: bool = False
    embedder: str = "wordllama"  # the model is loaded only when the semantic cache is enabled
    threshold: float | None = Field(default=None, gt=0, le=1)
    dim: int = Field(default=1536, gt=0)  # vector length of a provider:<model> embedder
    max_entries: int = Field(default=100_000, gt=0)  # memory index bound
    max_per_context: int = Field(default=1000, gt=0)  # Redis index bound per context


class CacheConfig(_Strict):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    ttl_s: int = Field(default=86400, gt=0)
    prefix: str = "spendgate:cache:"
    # The root of every Redis key (see proxy.pipeline.redis_keys); ``prefix`` must lie under it.
    redis_prefix: str = Field(default="spendgate:", min_length=1)
    max_bytes: int = Field(default=DEFAULT_CACHE_BYTES, gt=0)
    lookup_timeout_ms: int = Field(default=50, gt=0)
    cache_length: bool = False
    encryption_key: str | None = None
    semantic: SemanticConfig = SemanticConfig()

    @model_validator(mode="after")
    def _prefix_under_root(self) -> CacheConfig:
        chosen = self.model_fields_set
        if {"prefix", "redis_prefix"} <= chosen and not self.prefix.startswith(self.redis_prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must start with redis_prefix {self.redis_prefix!r}, "
                "so that every key of this deployment lives under one prefix"
            )
        return self


class LedgerConfig(_Strict):
    url: str = "sqlite:///spendgate.db"
    fee_rate: Decimal = Field(default=Decimal("0.10"), ge=0, le=1)
    spill_path: str | None = None
    max_pending: int = Field(default=10000, gt=0)


class KeyConfig(_Strict):
    _nested = model_validator(mode="before")(_flatten_overrides)

    key: str | None = None
    key_sha256: str | None = None
    tenant: str = Field(min_length=1)
    name: str | None = None
    routing_mode: RoutingMode | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)


class AuthConfig(_Strict):
    admin_key: str | None = None
    keys: list[KeyConfig] = Field(default_factory=list)

    @field_validator("admin_key")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class TenantConfig(_Strict):
    """Per-tenant overrides (flat keys, or nested ``cache`` / ``routing`` sections)."""

    _nested = model_validator(mode="before")(_flatten_overrides)

    cache_enabled: bool | None = None
    cache_namespace: str | None = None
    semantic_threshold: float | None = Field(default=None, gt=0, le=1)
    routing_mode: RoutingMode | None = None
    baseline_model: str | None = None


class BudgetConfig(_Strict):
    period: Literal["hour", "day", "month", "run"]
    name: str | None = None
    limit_usd: Decimal = Field(gt=0)
    tenant: str | None = None
    key_id: str | None = None
    agent: str | None = None
    workflow: str | None = None


class ServerConfig(_Strict):
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    log_content: bool = False
    access_log: bool = True
    loop_lag_probe: bool = False
    # Peers whose X-Forwarded-For names the client (reverse proxies): addresses or networks.
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
        return value


class PricingConfig(_Strict):
    # Written by `spendgate pricing import`; read at start-up when it exists.
    overrides_file: str = "spendgate-prices.json"


class Config(_Strict):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: list[ModelConfig] = Field(default_factory=list)
    routing: RoutingConfig = RoutingConfig()
    cache: CacheConfig = CacheConfig()
    ledger: LedgerConfig = LedgerConfig()
    auth: AuthConfig | None = None
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    server: ServerConfig = ServerConfig()
    pricing: PricingConfig = PricingConfig()
