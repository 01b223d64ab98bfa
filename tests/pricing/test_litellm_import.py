from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pricing.catalog import load_catalog
from pricing.cost import UnitPrices
from pricing.litellm_import import LITELLM_SOURCE, import_litellm
from proxy.errors import ConfigError


def _no_float(text: str) -> Any:
    raise AssertionError(f"float written: {text}")


@pytest.fixture
def imported(tmp_path: Path, litellm_fixture: Path) -> tuple[Path, dict[str, Any]]:
    dest = tmp_path / "overrides" / "prices.json"
    report = import_litellm(litellm_fixture, dest, as_of=date(2026, 11, 1))
    assert report.imported == 9
    assert report.dest == dest
    assert set(report.skipped) == {"sample_spec", "dall-e-3", "mystery-model"}
    assert "image_generation" in report.skipped["dall-e-3"]
    assert report.skipped_count == 3
    doc = json.loads(dest.read_text(), parse_float=_no_float)
    return dest, doc["models"]


def test_prices_are_exact_per_million_strings(imported: tuple[Path, dict[str, Any]]) -> None:
    _, models = imported
    assert models["gpt-4o"]["prices"] == {"input": "2.5", "cached_input": "1.25", "output": "10"}
    # 1.65e-07 x 1e6 is 0.16499999999999998 in binary floats; Decimal keeps 0.165
    assert models["azure/gpt-4o-mini"]["prices"]["input"] == "0.165"
    assert models["azure/gpt-4o-mini"]["provider"] == "azure"
    assert models["gpt-4o"]["as_of"] == "2026-11-01"
    assert models["gpt-4o"]["source"] == LITELLM_SOURCE
    assert models["gpt-4o"]["encoding"] == "o200k_base"
    assert models["text-embedding-3-small"]["encoding"] == "cl100k_base"
    assert models["text-embedding-3-small"]["mode"] == "embedding"
    assert models["text-embedding-3-small"]["prices"]["output"] == "0"


def test_names_and_capabilities(imported: tuple[Path, dict[str, Any]]) -> None:
    _, models = imported
    gemini = models["gemini-2.5-pro"]
    assert gemini["provider"] == "google"
    assert gemini["context_window"] == 1048576 and gemini["max_output"] == 65535
    assert gemini["capabilities"] == {
        "tools": True,
        "vision": True,
        "json_schema": True,
        "reasoning": True,
    }
    assert "encoding" not in gemini  # a curated tokenizer choice is kept on merge
    assert models["groq/llama-3.3-70b-versatile"]["capabilities"]["vision"] is False
    assert "together/meta-llama/Llama-3.3-70B-Instruct-Turbo" in models
    # a bare name under another provider is namespaced, never taking the curated entry's name
    assert (
        models["vertex_ai-language-models/gemini-2.5-flash"]["provider"]
        == "vertex_ai-language-models"
    )
    assert "gemini-2.5-flash" not in models


def test_above_200k_prices_become_tiers(imported: tuple[Path, dict[str, Any]]) -> None:
    _, models = imported
    assert models["claude-sonnet-4-5"]["prices"] == {
        "input": "3",
        "output": "15",
        "cached_input": "0.3",
        "cache_write": "3.75",
    }
    assert models["claude-sonnet-4-5"]["tiers"] == [
        {
            "above_prompt_tokens": 200000,
            "input": "6",
            "output": "22.5",
            "cached_input": "0.6",
            "cache_write": "7.5",
        }
    ]
    assert models["gpt-4o"]["tiers"] == []


def test_override_file_loads_and_wins(imported: tuple[Path, dict[str, Any]]) -> None:
    dest, _ = imported
    base = load_catalog()
    catalog = load_catalog(overrides_path=dest)
    assert catalog.version != base.version
    assert len(catalog) == len(base) + 2  # azure and vertex entries are new; the rest overlay
    quote = catalog.quote("claude-sonnet-4-5", prompt_tokens=250_000)
    assert quote.source == "override"
    assert quote.prices == UnitPrices(Decimal("6"), Decimal("22.5"), Decimal("0.6"), Decimal("7.5"))
    sonnet = catalog.get("claude-sonnet-4-5-20250929")
    assert sonnet is not None and sonnet.encoding == "cl100k_base"  # curated fields survive
    assert catalog.quote("gpt-4.1", prompt_tokens=1).source == "catalog"


def test_unreadable_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        import_litellm(tmp_path / "missing.json", tmp_path / "out.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="object"):
        import_litellm(bad, tmp_path / "out.json")
