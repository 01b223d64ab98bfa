"""``spendgate pricing import --from-litellm-wheel``: prices from a wheel built here.

The wheel is built by the test in LiteLLM's layout: the price map under
``litellm/``, a ``.dist-info`` with METADATA (the version) and RECORD. Its
``litellm/__init__.py`` raises, so any import of the package fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import subprocess
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pricing.catalog import load_catalog
from pricing.catalog_format import STALE_AFTER, stale_entries
from pricing.catalog_refresh import refresh_catalog
from pricing.litellm_import import imported_on
from pricing.litellm_wheel import PRICE_FILE, read_wheel
from proxy.errors import ConfigError
from tests.support.processes import child_env, python_module

VERSION = "9.8.7"
PRICE_MAP: dict[str, Any] = {
    "sample_spec": {"input_cost_per_token": 0.0, "mode": "chat"},
    "gpt-9": {
        "litellm_provider": "openai", "mode": "chat", "max_input_tokens": 400000,
        "max_output_tokens": 128000, "input_cost_per_token": 1.65e-06,
        "output_cost_per_token": 1.2e-05, "cache_read_input_token_cost": 1.65e-07,
        "supports_function_calling": True,
    },
    "claude-test-9": {
        "litellm_provider": "anthropic", "mode": "chat", "max_input_tokens": 1000000,
        "input_cost_per_token": 2e-06, "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 2e-07, "cache_creation_input_token_cost": 2.5e-06,
        "input_cost_per_token_above_200k_tokens": 4e-06,
    },
    "dall-e-9": {"litellm_provider": "openai", "mode": "image_generation"},
}  # fmt: skip
POISON = b'raise RuntimeError("litellm itself must never be imported")\n'


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path, *, version: str = VERSION, prices: bool = True) -> Path:
    """A minimal ``litellm`` wheel: package, price map, METADATA, WHEEL, RECORD."""
    info = f"litellm-{version}.dist-info"
    files = {
        "litellm/__init__.py": POISON,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: litellm\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }  # fmt: skip
    if prices:
        files[PRICE_FILE] = json.dumps(PRICE_MAP).encode()
    record = [_record_line(name, data) for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"litellm-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def spendgate(
    *args: str, cwd: Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = child_env()
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}:{env['PYTHONPATH']}"
    return subprocess.run(
        python_module("proxy.cli", *args), cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_the_price_map_and_version_are_read_from_the_wheel(tmp_path: Path) -> None:
    wheel = read_wheel(build_wheel(tmp_path))
    assert wheel.version == VERSION
    assert json.loads(wheel.content) == PRICE_MAP
    assert wheel.as_of == "litellm 9.8.7"
    assert wheel.source.startswith("https://pypi.org/project/litellm/9.8.7/")


def test_a_wheel_without_the_price_map_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_wheel(build_wheel(tmp_path, prices=False))
    assert PRICE_FILE in caught.value.problems[0]
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable wheel"):
        read_wheel(tmp_path / "junk.whl")


def test_the_command_writes_the_overrides_with_the_wheel_version(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    out = tmp_path / "prices.json"
    done = spendgate(
        "pricing", "import", "--from-litellm-wheel", str(wheel), "--out", str(out), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 2 models from litellm 9.8.7")
    doc = json.loads(out.read_text())
    assert doc["imported_on"] == date.today().isoformat()
    gpt, claude = doc["models"]["gpt-9"], doc["models"]["claude-test-9"]
    assert gpt["as_of"] == claude["as_of"] == "litellm 9.8.7"
    assert gpt["source"].startswith("https://pypi.org/project/litellm/9.8.7/")
    assert gpt["prices"] == {"input": "1.65", "cached_input": "0.165", "output": "12"}
    assert claude["tiers"][0]["above_prompt_tokens"] == 200_000
    # And the proxy's catalog reads it: prices, provenance, an import date for its age.
    catalog = load_catalog(overrides_path=out)
    entry = catalog.get("gpt-9")
    assert entry is not None and entry.origin == "override" and entry.as_of == "litellm 9.8.7"
    assert imported_on(out) == date.today()


def test_the_installed_package_is_read_without_importing_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        wheel.extractall(site)  # what an installer does with a pure wheel
    out = tmp_path / "prices.json"
    done = spendgate(
        "pricing",
        "import",
        "--from-litellm-wheel",
        "--out",
        str(out),
        cwd=tmp_path,
        pythonpath=site,
    )
    assert done.returncode == 0, done.stderr
    assert "litellm 9.8.7" in done.stdout and str(site) in done.stdout
    assert json.loads(out.read_text())["models"]["gpt-9"]["as_of"] == "litellm 9.8.7"


def test_without_an_installed_litellm_the_command_says_what_to_do(tmp_path: Path) -> None:
    if importlib.util.find_spec("litellm") is not None:
        pytest.skip("litellm is installed in this environment")
    done = spendgate("pricing", "import", "--from-litellm-wheel", cwd=tmp_path)
    assert done.returncode == 1
    assert "litellm is not installed" in done.stderr and "pip download litellm" in done.stderr


def test_imported_entries_age_from_the_day_of_the_import(tmp_path: Path) -> None:
    out = tmp_path / "prices.json"
    spendgate(
        "pricing",
        "import",
        "--from-litellm-wheel",
        str(build_wheel(tmp_path)),
        "--out",
        str(out),
        cwd=tmp_path,
    )
    catalog = load_catalog(overrides_path=out)
    day = date.today()
    fresh = {e.name for e, _ in stale_entries(catalog, today=day, imported_on=imported_on(out))}
    assert "gpt-9" not in fresh
    later = day + STALE_AFTER + STALE_AFTER / 180
    old = {e.name for e, _ in stale_entries(catalog, today=later, imported_on=imported_on(out))}
    assert {"gpt-9", "claude-test-9"} <= old


def test_pricing_warns_about_entries_older_than_180_days(tmp_path: Path) -> None:
    overrides = {
        "schema": 1,
        "models": {
            "gpt-4o": {"as_of": "2020-01-01", "source": "https://example.test/old"},
            "gpt-4o-mini": {
                "as_of": date.today().isoformat(),
                "source": "https://example.test/new",
            },
        },
    }
    (tmp_path / "spendgate-prices.json").write_text(json.dumps(overrides))
    done = spendgate("pricing", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warned = [line.strip() for line in done.stderr.splitlines()[1:]]
    assert any(line.startswith("gpt-4o (as of 2020-01-01, ") for line in warned), done.stderr
    assert not any(line.startswith("gpt-4o-mini ") for line in warned)
    assert done.stderr.startswith("warning: ") and "older than 180 days" in done.stderr
    one = spendgate("pricing", "gpt-4o", cwd=tmp_path)
    assert "gpt-4o (as of 2020-01-01" in one.stderr
    assert spendgate("pricing", "gpt-4o-mini", cwd=tmp_path).stderr == ""


def curated(prices: dict[str, str], *, aliases: list[str], source: str) -> dict[str, Any]:
    return {
        "provider": "openai", "mode": "chat", "prices": prices, "tiers": [],
        "context_window": 1000, "max_output": 100,
        "capabilities": {"tools": False, "vision": False, "json_schema": False, "reasoning": False},
        "encoding": "o200k_base", "encoding_exact": True, "aliases": aliases,
        "as_of": "2025-01-01", "source": source,
    }  # fmt: skip


def test_the_catalog_refresh_keeps_provenance_honest(tmp_path: Path) -> None:
    old = {"input": "2", "cached_input": "1", "output": "8"}
    catalog = {
        "schema": 1,
        "models": {
            "gpt-9": curated(old, aliases=["gpt-9-2401"], source="https://example.test/page"),
            "gone-model": curated(old, aliases=[], source="https://example.test/gone"),
        },
    }
    wheel = read_wheel(build_wheel(tmp_path))
    today = date(2026, 12, 4)
    doc, done, missing = refresh_catalog(catalog, wheel, today=today, add=["claude-test-9"])
    models = doc["models"]
    assert (done, missing) == (["gpt-9", "claude-test-9"], ["gone-model"])
    gpt = models["gpt-9"]
    assert gpt["prices"] == {"cached_input": "0.165", "input": "1.65", "output": "12"}
    assert (gpt["as_of"], gpt["source"]) == ("2026-12-04", wheel.source)
    assert gpt["context_window"] == 400000 and gpt["encoding_exact"] is True  # curated kept
    # The dated alias named the old snapshot: it keeps the old prices and where they came from.
    assert gpt["aliases"] == []
    assert models["gpt-9-2401"]["prices"] == old
    assert models["gpt-9-2401"]["source"] == "https://example.test/page"
    assert models["gone-model"] == catalog["models"]["gone-model"]
    claude = models["claude-test-9"]
    assert claude["encoding"] == "cl100k_base" and claude["encoding_exact"] is False
    assert claude["tiers"][0]["above_prompt_tokens"] == 200_000
    # Every entry that kept its own source is named, so a second run changes nothing.
    assert doc["refreshed"] == {"from": "litellm 9.8.7", "on": "2026-12-04",
                                "missing_from_wheel": ["gpt-9-2401", "gone-model"]}  # fmt: skip
    again, _, _ = refresh_catalog(doc, wheel, today=today, add=["claude-test-9"])
    assert again == doc
    with pytest.raises(SystemExit, match="no-such-model"):
        refresh_catalog(catalog, wheel, today=today, add=["no-such-model"])
