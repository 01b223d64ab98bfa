"""Import LiteLLM's ``model_prices_and_context_window.json`` as a catalog override file.

LiteLLM states prices in USD per token as JSON floats. The file is parsed
with ``parse_float=Decimal`` so no price is ever a binary float, and each
per-token price times 1,000,000 becomes the catalog's USD per 1M tokens.

Only ``chat`` and ``embedding`` entries are imported (the proxy serves chat
completions and embeddings); other modes, the ``sample_spec`` entry and
entries without an input or output price are skipped and reported. Names are
rewritten to the catalog's spelling: first-party providers lose LiteLLM's
prefix ("gemini/gemini-2.5-pro" -> "gemini-2.5-pro"), hosts keep theirs
("together_ai/..." -> "together/..."), and any other provider's models are
namespaced by it ("vertex_ai-language-models/gemini-2.5-pro"). Per-token ``*_above_<N>k_tokens``
prices become prompt-size tiers.

The written file uses the schema of ``catalog.json``; entries carry no
``encoding`` except for OpenAI models, so a curated entry's tokenizer choice
is kept when the override is merged over it. Each entry records where its
prices came from (``source``) and when (``as_of``): the import's date for a
file, the wheel's version for a LiteLLM wheel (``pricing.litellm_wheel``),
whose import date is then kept in the file as ``imported_on``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError

LITELLM_SOURCE = "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json"
_PER_MILLION = Decimal(1_000_000)
_MODES = {"chat": "chat", "embedding": "embedding"}
# LiteLLM provider -> (catalog provider, name prefix in the catalog)
_PROVIDERS: Mapping[str, tuple[str, str]] = {
    "openai": ("openai", ""),
    "anthropic": ("anthropic", ""),
    "gemini": ("google", ""),
    "deepseek": ("deepseek", ""),
    "mistral": ("mistral", ""),
    "groq": ("groq", "groq/"),
    "together_ai": ("together", "together/"),
    "fireworks_ai": ("fireworks", "fireworks/"),
}
_PRICE_KEYS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
}
_TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost)_above_(\d+)k_tokens$"
)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """How many entries were written to ``dest``, and which were skipped and why."""

    imported: int
    skipped: Mapping[str, str]  # LiteLLM key -> why it was skipped
    dest: Path

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


def import_litellm(src: Path, dest: Path, *, as_of: date | None = None) -> ImportReport:
    """Convert LiteLLM's price map at ``src`` into a catalog override file at ``dest``.

    ``as_of`` (default: today) is recorded on every imported entry.
    """
    try:
        content = src.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{src}: cannot read LiteLLM price map: {exc}"]) from exc
    stamp = (as_of or date.today()).isoformat()
    return import_price_map(content, dest, as_of=stamp, source=LITELLM_SOURCE, where=str(src))


def import_price_map(
    content: bytes,
    dest: Path,
    *,
    as_of: str,
    source: str,
    where: str,
    imported_on: date | None = None,
) -> ImportReport:
    """Write the override file for a LiteLLM price map's bytes (see the module docstring)."""
    models, skipped = convert_price_map(parse_price_map(content, where), as_of=as_of, source=source)
    out: dict[str, Any] = {"schema": 1, "generated_from": source, "models": models}
    if imported_on is not None:
        out["imported_on"] = imported_on.isoformat()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(dest)  # atomic, so a running proxy never reads half a file
    return ImportReport(imported=len(models), skipped=skipped, dest=dest)


def parse_price_map(content: bytes, where: str) -> dict[str, Any]:
    """LiteLLM's JSON, every number a ``Decimal`` (never a binary float)."""
    try:
        doc = json.loads(content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{where}: cannot read LiteLLM price map: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise ConfigError([f"{where}: expected a JSON object"])
    return doc


def convert_price_map(
    doc: Mapping[str, Any], *, as_of: str, source: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(catalog entries by name, skipped LiteLLM keys with the reason)."""
    models: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for key, spec in doc.items():
        reason = _skip_reason(key, spec)
        if reason is not None:
            skipped[key] = reason
            continue
        name, entry = _convert(key, spec, as_of, source)
        if name in models:
            skipped[key] = f"duplicate of {name}"
            continue
        models[name] = entry
    return models, skipped


def imported_on(path: Path) -> date | None:
    """The day a LiteLLM wheel was imported into the override file at ``path``, if any."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return date.fromisoformat(doc["imported_on"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _skip_reason(key: str, spec: object) -> str | None:
    if key == "sample_spec":
        return "format description, not a model"
    if not isinstance(spec, dict):
        return "not an object"
    mode = spec.get("mode", "chat")
    if mode not in _MODES:
        return f"mode {mode!r} is not served"
    for field in ("input_cost_per_token", "output_cost_per_token"):
        value = spec.get(field)
        if mode == "embedding" and field == "output_cost_per_token" and value is None:
            continue
        if not isinstance(value, Decimal | int) or isinstance(value, bool) or value < 0:
            return f"no usable {field}"
    return None


def _per_million(value: Decimal | int) -> str:
    """Per-token price -> USD per 1M tokens, as a plain decimal string."""
    scaled = (Decimal(value) * _PER_MILLION).normalize()
    return format(scaled, "f")


def _price_fields(spec: Mapping[str, Any]) -> dict[str, str]:
    prices = {
        target: _per_million(spec[key])
        for key, target in _PRICE_KEYS.items()
        if isinstance(spec.get(key), Decimal | int) and not isinstance(spec.get(key), bool)
    }
    prices.setdefault("output", "0")
    return prices


def _tiers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    by_threshold: dict[int, dict[str, str]] = {}
    for key, value in spec.items():
        match = _TIER_KEY.match(key)
        if match and isinstance(value, Decimal | int) and not isinstance(value, bool):
            threshold = int(match.group(2)) * 1000
            by_threshold.setdefault(threshold, {})[_PRICE_KEYS[match.group(1)]] = _per_million(
                value
            )
    base = _price_fields(spec)
    tiers = []
    for threshold in sorted(by_threshold):
        # A tier only lists what changes; unlisted classes keep the base price.
        fields = {**base, **by_threshold[threshold]}
        tiers.append({"above_prompt_tokens": threshold, **fields})
    return tiers


def _name_and_provider(key: str, litellm_provider: str) -> tuple[str, str]:
    """Catalog name and provider; unknown providers are always namespaced.

    LiteLLM lists some models bare under several providers (e.g. Vertex AI's
    "gemini-2.5-pro"), so only the providers mapped here may own bare names.
    """
    provider, prefix = _PROVIDERS.get(litellm_provider, (litellm_provider, f"{litellm_provider}/"))
    head = f"{litellm_provider}/"
    bare = key[len(head) :] if key.startswith(head) else key
    return prefix + bare, provider


def _openai_encoding(name: str) -> str:
    legacy = name.startswith(("gpt-4-", "gpt-3.5", "text-embedding")) or name == "gpt-4"
    return "cl100k_base" if legacy else "o200k_base"


def _convert(
    key: str, spec: Mapping[str, Any], stamp: str, source: str
) -> tuple[str, dict[str, Any]]:
    name, provider = _name_and_provider(key, str(spec.get("litellm_provider", "unknown")))
    context = spec.get("max_input_tokens") or spec.get("max_tokens") or 0
    entry: dict[str, Any] = {
        "provider": provider,
        "mode": _MODES[spec.get("mode", "chat")],
        "prices": _price_fields(spec),
        "tiers": _tiers(spec),
        "context_window": context if isinstance(context, int) else 0,
        "max_output": spec.get("max_output_tokens")
        if isinstance(spec.get("max_output_tokens"), int)
        else 0,
        "capabilities": {
            "tools": bool(spec.get("supports_function_calling", False)),
            "vision": bool(spec.get("supports_vision", False)),
            "json_schema": bool(spec.get("supports_response_schema", False)),
            "reasoning": bool(spec.get("supports_reasoning", False)),
        },
        "as_of": stamp,
        "source": source,
    }
    if provider == "openai":
        entry["encoding"] = _openai_encoding(name)
        entry["encoding_exact"] = True
    return name, entry
