from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from pricing.catalog import Catalog, PriceOverride, load_catalog
from pricing.catalog_format import format_catalog
from pricing.cost import UnitPrices
from pricing.tokens import ENCODINGS
from pricing.usage import Usage
from proxy.errors import ConfigError

PRICE_FIELDS = ("input", "cached_input", "output")
ENTRY_FIELDS = {
    "provider",
    "mode",
    "prices",
    "tiers",
    "context_window",
    "max_output",
    "capabilities",
    "encoding",
    "encoding_exact",
    "aliases",
    "as_of",
    "source",
}


def _no_float(text: str) -> Any:
    raise AssertionError(f"float in price data: {text}")


def _raw_models() -> dict[str, dict[str, Any]]:
    text = resources.files("pricing").joinpath("catalog.json").read_text(encoding="utf-8")
    models: dict[str, dict[str, Any]] = json.loads(text, parse_float=_no_float)["models"]
    return models


def _is_decimal_string(value: object) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+)?", value):
        return False
    return Decimal(value).is_finite()


def test_catalog_has_at_least_40_models_from_every_provider() -> None:
    models = _raw_models()
    assert len(models) >= 40
    providers = {m["provider"] for m in models.values()}
    assert {
        "openai",
        "anthropic",
        "google",
        "deepseek",
        "mistral",
        "groq",
        "together",
        "fireworks",
    } <= providers
    for required in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "o3",
        "o4-mini",
        "gpt-5",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-1",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "deepseek-chat",
        "groq/openai/gpt-oss-120b",
    ):
        assert required in models, required


@pytest.mark.parametrize("name", sorted(_raw_models()))
def test_every_entry_is_complete_and_exact(name: str) -> None:
    entry = _raw_models()[name]
    assert set(entry) == ENTRY_FIELDS
    prices = entry["prices"]
    for field in PRICE_FIELDS:
        assert _is_decimal_string(prices[field]), (field, prices[field])
    assert Decimal(prices["cached_input"]) <= Decimal(prices["input"])
    if entry["provider"] == "anthropic":
        # 5-minute cache writes cost 1.25x input
        assert Decimal(prices["cache_write"]) == Decimal(prices["input"]) * Decimal("1.25")
    elif "cache_write" in prices:  # only where the provider charges for a cache write
        assert Decimal(prices["cache_write"]) >= Decimal(prices["input"])
    for tier in entry["tiers"]:
        assert isinstance(tier["above_prompt_tokens"], int) and tier["above_prompt_tokens"] > 0
        for field in PRICE_FIELDS:
            assert _is_decimal_string(tier[field])
    assert isinstance(entry["context_window"], int) and entry["context_window"] > 0
    assert isinstance(entry["max_output"], int)
    assert set(entry["capabilities"]) == {"tools", "vision", "json_schema", "reasoning"}
    assert all(isinstance(v, bool) for v in entry["capabilities"].values())
    assert entry["encoding"] in ENCODINGS
    assert isinstance(entry["encoding_exact"], bool)
    # Only OpenAI's own models can have tiktoken's tokenizer exactly.
    assert not entry["encoding_exact"] or entry["provider"] == "openai"
    date.fromisoformat(entry["as_of"])
    assert entry["source"].startswith("https://")


def test_refreshed_entries_name_the_wheel_and_the_rest_keep_their_source() -> None:
    text = resources.files("pricing").joinpath("catalog.json").read_text(encoding="utf-8")
    refresh = json.loads(text, parse_float=_no_float)["refreshed"]
    version = refresh["from"].removeprefix("litellm ")
    for name, entry in _raw_models().items():
        from_wheel = entry["source"].startswith(f"https://pypi.org/project/litellm/{version}/")
        assert from_wheel == (entry["as_of"] == refresh["on"]), name
        if name in refresh["missing_from_wheel"]:
            assert not from_wheel, name
    assert "claude-sonnet-5" in _raw_models() and "gpt-5.5" in _raw_models()


def test_aliases_are_unique_and_never_shadow_a_name() -> None:
    models = _raw_models()
    aliases = [a.lower() for m in models.values() for a in m["aliases"]]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & {n.lower() for n in models}


def test_loaded_entries_parse_to_decimals(catalog: Catalog) -> None:
    entry = catalog.get("claude-haiku-5-5")
    assert entry is not None
    assert entry.prices == UnitPrices(
        input=Decimal("0.10"),
        output=Decimal("0.50"),
        cached_input=Decimal("0.01"),
        cache_write=Decimal("0.125"),
    )
    assert [t.above_prompt_tokens for t in entry.tiers] == [100_000]
    assert entry.capabilities.reasoning and entry.capabilities.tools
    assert entry.encoding == "cl100k_base" and not entry.encoding_exact


def test_cache_write_and_cached_input_default_to_input(catalog: Catalog) -> None:
    mistral = catalog.get("mistral-small-latest")
    assert mistral is not None
    assert mistral.prices.cache_write == mistral.prices.input == Decimal("0.15")
    gpt = catalog.get("gpt-4o")
    assert gpt is not None and gpt.prices.cache_write == Decimal("2.50")


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("o3-2025-04-16", "o3"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("anthropic/claude-opus-4-1", "claude-opus-4-1"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("mistral-large-2411", "mistral-large-2411"),  # the snapshot, not today's -latest
        ("mistral-large-2412", "mistral-large-latest"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile"),
        ("openai/gpt-oss-120b", "groq/openai/gpt-oss-120b"),
        (
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ),
    ],
)
def test_alias_and_suffix_resolution(catalog: Catalog, asked: str, expected: str) -> None:
    entry = catalog.get(asked)
    assert entry is not None, asked
    assert entry.name == expected


def test_provider_picks_the_host(catalog: Catalog) -> None:
    together = catalog.get("openai/gpt-oss-120b", provider="together")
    fireworks = catalog.get("accounts/fireworks/models/gpt-oss-120b", provider="fireworks")
    assert together is not None and together.name == "together/openai/gpt-oss-120b"
    assert fireworks is not None and fireworks.provider == "fireworks"


def test_unknown_model_is_unknown_not_free(catalog: Catalog) -> None:
    assert catalog.get("my-finetune-v7") is None
    quote = catalog.quote("my-finetune-v7", prompt_tokens=10)
    assert quote.source == "unknown"
    assert not quote.known
    assert quote.model == "my-finetune-v7"
    assert quote.cost_micro(Usage(prompt_tokens=1000, completion_tokens=10)) is None
    known = catalog.quote("gpt-4o", prompt_tokens=10)
    assert known.known and known.source == "catalog"
    assert known.cost_micro(Usage(prompt_tokens=1000, completion_tokens=10)) == 2600  # 2500 + 100


def test_quote_applies_tiers(catalog: Catalog) -> None:
    low = catalog.quote("gemini-2.5-pro", prompt_tokens=200_000).prices
    high = catalog.quote("gemini-2.5-pro", prompt_tokens=200_001).prices
    assert (low.input, low.output, low.cached_input) == (
        Decimal("1.25"),
        Decimal("10.00"),
        Decimal("0.125"),
    )
    assert (high.input, high.output, high.cached_input) == (
        Decimal("2.50"),
        Decimal("15.00"),
        Decimal("0.25"),
    )


def test_version_is_stable_for_the_same_content() -> None:
    assert load_catalog().version == load_catalog().version
    assert re.fullmatch(r"[0-9a-f]{16}", load_catalog().version)


def _write_override(path: Path, price: str) -> None:
    doc = {"schema": 1, "models": {"gpt-4o": {"prices": {"input": price, "output": "10"}}}}
    path.write_text(json.dumps(doc))


def test_override_file_wins_and_changes_the_version(tmp_path: Path) -> None:
    base = load_catalog()
    path = tmp_path / "prices.json"
    _write_override(path, "2.00")
    first = load_catalog(overrides_path=path)
    quote = first.quote("gpt-4o-2024-08-06", prompt_tokens=1)
    assert quote.source == "override"
    # only the prices came from the override; the rest of the entry is kept
    assert quote.prices == UnitPrices(
        Decimal("2.00"), Decimal("10"), Decimal("2.00"), Decimal("2.00")
    )
    entry = first.get("gpt-4o")
    assert entry is not None and entry.context_window == 128000
    assert first.version != base.version
    _write_override(path, "2.10")
    assert load_catalog(overrides_path=path).version not in {first.version, base.version}


def test_missing_override_file_is_ignored(tmp_path: Path) -> None:
    assert load_catalog(overrides_path=tmp_path / "absent.json").version == load_catalog().version


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"models": {"gpt-4o": {"prices": {"input": 2.5, "output": "10"}}}}', "float"),
        ('{"models": {"gpt-4o": {"prices": {"input": "-1", "output": "10"}}}}', "non-negative"),
        ('{"models": {"gpt-4o": {"prices": {"input": "cheap", "output": "10"}}}}', "decimal"),
        ('{"models": {"x": {"prices": {"output": "10"}}}}', "required"),
        ('{"models": []}', "models"),
        ("not json", "invalid JSON"),
    ],
)
def test_invalid_override_file_is_a_config_error(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_catalog(overrides_path=path)


def test_config_prices_win_and_change_the_version(catalog: Catalog) -> None:
    configured = catalog.with_prices(
        {"claude-sonnet-4-5-20250929": PriceOverride(input=Decimal("2.7"), output=Decimal("13.5"))}
    )
    quote = configured.quote("claude-sonnet-4-5", prompt_tokens=300_000)
    assert quote.source == "config"
    # missing cached_input / cache_write default to input; configured prices drop tiers
    assert quote.prices == UnitPrices(
        Decimal("2.7"), Decimal("13.5"), Decimal("2.7"), Decimal("2.7")
    )
    assert configured.version != catalog.version
    assert catalog.quote("claude-sonnet-4-5", prompt_tokens=1).source == "catalog"


def test_config_price_makes_an_unknown_model_known(catalog: Catalog) -> None:
    price = PriceOverride.parse({"input": "0.5", "output": "1", "cached_input": "0.25"})
    configured = catalog.with_prices({"my-finetune": price})
    quote = configured.quote("my-finetune", prompt_tokens=100)
    assert quote.known and quote.source == "config"
    # 1000 x 0.5 + 1000 x 0.25 (cached) + 100 x 1 = 500 + 250 + 100 = 850
    assert quote.cost_micro(Usage(2000, 100, cached_prompt_tokens=1000)) == 850


@pytest.mark.parametrize(
    "raw",
    [{"input": 0.5, "output": "1"}, {"input": "1"}, {"input": "1", "output": "1", "typo": "1"}],
)
def test_price_override_parse_rejects_floats_and_bad_keys(raw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PriceOverride.parse(raw)


def test_format_catalog_table_and_detail(catalog: Catalog) -> None:
    table = format_catalog(catalog)
    assert table.splitlines()[0].split()[:3] == ["MODEL", "PROVIDER", "INPUT"]
    assert f"{len(catalog)} models, version {catalog.version}" in table
    row = next(line for line in table.splitlines() if line.startswith("gpt-4o-mini "))
    assert [Decimal(p) for p in row.split()[2:6]] == [
        Decimal("0.15"), Decimal("0.075"), Decimal("0.15"), Decimal("0.60")
    ]  # fmt: skip
    assert row.split()[1] == "openai"
    detail = format_catalog(catalog, "gemini-2.5-pro")
    assert "prompt > 200000: input 2.5" in detail
    assert "o200k_base (approximation)" in detail
    assert "https://pypi.org/project/litellm/" in detail
    assert "price_source=unknown" in format_catalog(catalog, "nope-model")
