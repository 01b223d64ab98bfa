"""The model price catalog: unit prices, limits and capabilities per model.

Three layers, later ones winning:

1. ``catalog.json`` shipped with the package (curated, with sources);
2. an override file written by ``spendgate`` from LiteLLM's price map
   (same schema; its fields replace the package entry's fields);
3. ``models[].price`` from the configuration (see ``Catalog.with_prices``).

``Catalog.version`` hashes the content actually in effect, so any ledger row
can name the exact price table it was costed with. A model the catalog does
not know is quoted with ``source="unknown"``; it is never priced at $0.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pricing.cost import UnitPrices, cost_micro
from pricing.usage import Usage
from proxy.errors import ConfigError

PriceSource = Literal["catalog", "override", "config", "unknown"]
EntryOrigin = Literal["catalog", "override", "config"]
ModelMode = Literal["chat", "embedding"]

_ZERO = Decimal(0)
_UNKNOWN_PRICES = UnitPrices(_ZERO, _ZERO, _ZERO, _ZERO)
# Host prefixes as clients and LiteLLM spell them -> the catalog's spelling.
_PROVIDER_PREFIXES: Mapping[str, str] = MappingProxyType(
    dict.fromkeys(("openai", "anthropic", "gemini", "google", "deepseek", "mistral"), "")
    | {"groq": "groq/", "together": "together/", "together_ai": "together/"}
    | {"fireworks": "fireworks/", "fireworks_ai": "fireworks/"}
)
_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # claude-sonnet-4-5-20250929
    re.compile(r"-preview(-\d{2}-\d{2,4})?$"),  # gemini-2.5-flash-preview-05-20
    re.compile(r"-\d{3}$"),  # gemini-2.0-flash-001
    re.compile(r"-\d{4}$"),  # mistral-large-2411, gpt-4-0613
    re.compile(r"-latest$"),
)


_ABLE = {"tools": True, "vision": True, "json_schema": True, "reasoning": True}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model accepts: tool calls, image input, strict JSON schema, reasoning."""

    tools: bool
    vision: bool
    json_schema: bool
    reasoning: bool


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices that replace the base prices when the prompt exceeds a size."""

    above_prompt_tokens: int
    prices: UnitPrices


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model's prices (USD per 1M tokens), limits, capabilities and tokenizer.

    ``origin`` says which layer the prices came from; ``encoding_exact`` is
    False when ``encoding`` only approximates the provider's tokenizer.
    """

    name: str
    provider: str
    prices: UnitPrices
    tiers: tuple[PriceTier, ...]
    context_window: int
    max_output: int
    capabilities: Capabilities
    encoding: str
    encoding_exact: bool
    as_of: str
    source: str
    aliases: tuple[str, ...]
    mode: ModelMode = "chat"
    origin: EntryOrigin = "catalog"

    def prices_for(self, prompt_tokens: int) -> UnitPrices:
        """Unit prices for a call whose whole prompt is ``prompt_tokens`` long."""
        chosen = self.prices
        for tier in self.tiers:  # sorted by threshold, ascending
            if prompt_tokens > tier.above_prompt_tokens:
                chosen = tier.prices
        return chosen


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """``models[].price`` from the configuration, USD per 1M tokens.

    Missing ``cached_input`` / ``cache_write`` default to ``input``: a
    configured price is a complete statement and drops catalog tiers.
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, object], *, where: str = "price") -> PriceOverride:
        """Build from a config mapping whose values are decimal strings or ints."""
        unknown = set(raw) - {"input", "output", "cached_input", "cache_write"}
        if unknown:
            raise ConfigError([f"{where}: unknown keys {sorted(unknown)}"])
        for key in ("input", "output"):
            if key not in raw:
                raise ConfigError([f"{where}.{key}: required"])
        values = {k: _decimal(v, f"{where}.{k}") for k, v in raw.items()}
        return cls(
            input=values["input"],
            output=values["output"],
            cached_input=values.get("cached_input"),
            cache_write=values.get("cache_write"),
        )

    def as_raw(self) -> dict[str, str]:
        raw = {"input": str(self.input), "output": str(self.output)}
        if self.cached_input is not None:
            raw["cached_input"] = str(self.cached_input)
        if self.cache_write is not None:
            raw["cache_write"] = str(self.cache_write)
        return raw


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """Unit prices for one call; ``known`` is False when no price exists.

    An unknown quote carries zero prices only as a placeholder: callers must
    check ``known`` (or use ``cost_micro``, which returns None) and flag the
    row ``price_source=unknown`` instead of recording $0.
    """

    prices: UnitPrices
    source: PriceSource
    model: str

    @property
    def known(self) -> bool:
        return self.source != "unknown"

    def cost_micro(self, usage: Usage) -> int | None:
        """Cost of ``usage`` at this quote, or None when the price is unknown."""
        return cost_micro(usage, self.prices) if self.known else None


@dataclass(frozen=True, slots=True, eq=False)
class Catalog:
    """The price table in effect. Build it with ``load_catalog``."""

    entries: Mapping[str, ModelEntry]
    version: str
    _raw: Mapping[str, Mapping[str, Any]]
    _index: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, model: str, *, provider: str | None = None) -> ModelEntry | None:
        """The entry for ``model``, resolving aliases, date suffixes and host prefixes.

        With ``provider`` (e.g. "groq"), ``"<provider>/<model>"`` is tried first
        so that a model served by several hosts resolves to the right host.
        """
        for candidate in _candidates(model, provider):
            name = self._index.get(candidate.lower())
            if name is not None:
                return self.entries[name]
        return None

    def quote(self, model: str, *, prompt_tokens: int, provider: str | None = None) -> PriceQuote:
        """Unit prices for a call to ``model`` with a prompt of ``prompt_tokens``."""
        entry = self.get(model, provider=provider)
        if entry is None:
            return PriceQuote(prices=_UNKNOWN_PRICES, source="unknown", model=model)
        return PriceQuote(
            prices=entry.prices_for(prompt_tokens), source=entry.origin, model=entry.name
        )

    def with_prices(self, overrides: Mapping[str, PriceOverride]) -> Catalog:
        """A catalog where configured prices replace those of the named models.

        A name the catalog resolves keeps its limits and capabilities; an
        unknown name becomes a price-only entry (provider "config").
        """
        raw = {name: dict(entry) for name, entry in self._raw.items()}
        origins = {name: entry.origin for name, entry in self.entries.items()}
        for model, price in overrides.items():
            existing = self.get(model)
            name = existing.name if existing is not None else model
            # Capabilities of a model only the config prices are unknown: assume able, as
            # routing does for a model the catalog lacks; the upstream will say if not.
            base = raw.get(name, {"provider": "config", "source": "config", "capabilities": _ABLE})
            raw[name] = {**base, "prices": price.as_raw(), "tiers": []}
            origins[name] = "config"
        return _build(raw, origins)


def load_catalog(*, overrides_path: Path | None = None) -> Catalog:
    """The package catalog, with the LiteLLM override file applied if it exists.

    A missing override file is not an error (the import is optional); an
    unreadable or invalid one is a ``ConfigError``.
    """
    text = resources.files("pricing").joinpath("catalog.json").read_text(encoding="utf-8")
    raw = dict(_models(_load_json(text, "catalog.json")))
    origins: dict[str, EntryOrigin] = dict.fromkeys(raw, "catalog")
    if overrides_path is not None and overrides_path.exists():
        try:
            override_text = overrides_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{overrides_path}: {exc}"]) from exc
        for name, fields in _models(_load_json(override_text, str(overrides_path))).items():
            raw[name] = {**raw.get(name, {}), **fields}
            origins[name] = "override"
    return _build(raw, origins)


def _reject_float(text: str) -> Decimal:
    raise ConfigError([f"price data must not contain JSON floats (found {text}); use strings"])


def _load_json(text: str, where: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(text, parse_float=_reject_float)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{where}: invalid JSON: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise ConfigError([f"{where}: expected an object"])
    return doc


def _models(doc: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    models = doc.get("models")
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise ConfigError(["price data: 'models' must map names to objects"])
    return models


def _build(raw: Mapping[str, Mapping[str, Any]], origins: Mapping[str, EntryOrigin]) -> Catalog:
    entries = {name: _parse_entry(name, fields, origins[name]) for name, fields in raw.items()}
    index: dict[str, str] = {}
    for entry in entries.values():  # aliases first, so a real name always wins
        for alias in entry.aliases:
            index.setdefault(alias.lower(), entry.name)
    for name in entries:
        index[name.lower()] = name
    canonical = json.dumps(
        {"models": raw, "origins": origins}, sort_keys=True, separators=(",", ":")
    )
    version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return Catalog(
        entries=MappingProxyType(entries),
        version=version,
        _raw=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in raw.items()}),
        _index=MappingProxyType(index),
    )


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ConfigError([f"{where}: expected a decimal string, got {type(value).__name__}"])
    try:
        result = Decimal(value)
    except InvalidOperation as exc:
        raise ConfigError([f"{where}: not a decimal: {value!r}"]) from exc
    if not result.is_finite() or result < 0:
        raise ConfigError([f"{where}: must be a finite, non-negative number"])
    return result


def _unit_prices(raw: Mapping[str, Any], where: str) -> UnitPrices:
    if "input" not in raw or "output" not in raw:
        raise ConfigError([f"{where}: 'input' and 'output' are required"])
    price_in = _decimal(raw["input"], f"{where}.input")
    return UnitPrices(
        input=price_in,
        output=_decimal(raw["output"], f"{where}.output"),
        cached_input=_decimal(raw.get("cached_input", price_in), f"{where}.cached_input"),
        cache_write=_decimal(raw.get("cache_write", price_in), f"{where}.cache_write"),
    )


def _int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError([f"{where}.{key}: expected a non-negative integer"])
    return value


def _parse_entry(name: str, raw: Mapping[str, Any], origin: EntryOrigin) -> ModelEntry:
    where = f"models.{name}"
    prices = raw.get("prices")
    if not isinstance(prices, dict):
        raise ConfigError([f"{where}.prices: required object"])
    tiers = []
    for i, tier in enumerate(raw.get("tiers") or []):
        tier_where = f"{where}.tiers[{i}]"
        tiers.append(
            PriceTier(_int(tier, "above_prompt_tokens", tier_where), _unit_prices(tier, tier_where))
        )
    caps = raw.get("capabilities") or {}
    mode = raw.get("mode", "chat")
    if mode not in ("chat", "embedding"):
        raise ConfigError([f"{where}.mode: expected 'chat' or 'embedding'"])
    return ModelEntry(
        name=name,
        provider=str(raw.get("provider", "unknown")),
        prices=_unit_prices(prices, f"{where}.prices"),
        tiers=tuple(sorted(tiers, key=lambda t: t.above_prompt_tokens)),
        context_window=_int(raw, "context_window", where),
        max_output=_int(raw, "max_output", where),
        capabilities=Capabilities(
            tools=bool(caps.get("tools", False)),
            vision=bool(caps.get("vision", False)),
            json_schema=bool(caps.get("json_schema", False)),
            reasoning=bool(caps.get("reasoning", False)),
        ),
        encoding=str(raw.get("encoding", "o200k_base")),
        encoding_exact=bool(raw.get("encoding_exact", False)),
        as_of=str(raw.get("as_of", "")),
        source=str(raw.get("source", "")),
        aliases=tuple(str(a) for a in raw.get("aliases") or ()),
        mode=mode,
        origin=origin,
    )


def _strip_suffix(model: str) -> str | None:
    for pattern in _SUFFIXES:
        stripped = pattern.sub("", model)
        if stripped != model:
            return stripped
    return None


def _candidates(model: str, provider: str | None) -> list[str]:
    """Names to try for ``model``, most specific first."""
    bases = [model]
    head, sep, rest = model.partition("/")
    if sep and head.lower() in _PROVIDER_PREFIXES:
        bases += [_PROVIDER_PREFIXES[head.lower()] + rest, rest]
    out: list[str] = []
    for base in bases:
        stripped = _strip_suffix(base)
        for name in (base, stripped):
            if name is None:
                continue
            if provider:
                out.append(f"{_PROVIDER_PREFIXES.get(provider.lower(), provider + '/')}{name}")
            out.append(name)
    return out
