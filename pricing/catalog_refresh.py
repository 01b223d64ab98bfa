"""Refresh the packaged ``catalog.json`` from a LiteLLM wheel.

    pip download litellm --no-deps -d /tmp/litellm
    python -m pricing.catalog_refresh /tmp/litellm/litellm-*.whl --add gpt-5.5 ...

Every catalog entry that the wheel's price map still lists gets the wheel's
prices, prompt-size tiers, context window and output limit, and says so:
``source`` is the wheel on PyPI, ``as_of`` the day of the refresh (the day
the newest wheel was read, as for a pricing page). What the catalog curates
itself stays: tokenizer, aliases, capabilities. An entry the wheel no longer
lists keeps its own source and date, so ``spendgate pricing`` flags it once
it is old. ``--add NAME`` adds a model the catalog lacks, with the wheel's
fields and its provider's usual tokenizer.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pricing.litellm_import import convert_price_map, parse_price_map
from pricing.litellm_wheel import WheelPrices, read_wheel

CATALOG = Path(__file__).with_name("catalog.json")
# Tokenizer of a model the catalog adds: tiktoken's where it is the model's own.
_ENCODINGS = {"openai": "o200k_base", "google": "o200k_base", "mistral": "o200k_base"}
_EXACT_PREFIXES = ("gpt-4", "gpt-5", "o1", "o3", "o4")  # tiktoken maps these to o200k_base
_DATED = re.compile(r"-(\d{4}|\d{8}|\d{4}-\d{2}-\d{2})$")


def _with_cached(prices: Mapping[str, str]) -> dict[str, str]:
    # The catalog always states a cache-read price; without one it is the input price.
    return {"cached_input": prices["input"], **prices}


def refreshed(
    curated: Mapping[str, Any], fresh: Mapping[str, Any], *, as_of: str, source: str
) -> dict[str, Any]:
    """``curated`` with the wheel's prices and limits, and their provenance."""
    entry = dict(curated)
    entry["prices"] = _with_cached(fresh["prices"])
    entry["tiers"] = [_with_cached(tier) for tier in fresh["tiers"]]
    for limit in ("context_window", "max_output"):
        if fresh.get(limit):
            entry[limit] = fresh[limit]
    entry["as_of"], entry["source"] = as_of, source
    return entry


def added(name: str, fresh: Mapping[str, Any], *, as_of: str, source: str) -> dict[str, Any]:
    """A new catalog entry for ``name`` from the wheel's fields."""
    provider = str(fresh["provider"])
    exact = provider == "openai" and name.startswith(_EXACT_PREFIXES)
    entry = {
        "provider": provider,
        "mode": fresh["mode"],
        "prices": {},
        "tiers": [],
        "context_window": fresh["context_window"],
        "max_output": fresh["max_output"],
        "capabilities": fresh["capabilities"],
        "encoding": _ENCODINGS.get(provider, "cl100k_base"),
        "encoding_exact": exact,
        "aliases": [],
    }
    return refreshed(entry, fresh, as_of=as_of, source=source)


def _split_aliases(
    curated: Mapping[str, Any],
    new: Mapping[str, Any],
    fresh: Mapping[str, Mapping[str, Any]],
    *,
    as_of: str,
    source: str,
) -> dict[str, dict[str, Any]]:
    """Aliases that no longer cost what their entry costs, each as an entry of its own.

    An alias the wheel prices differently gets the wheel's entry. A dated
    alias (``mistral-large-2411``) of an entry whose prices just changed
    named the snapshot the old prices were for (``-latest`` has moved on):
    it keeps those prices and their provenance.
    """
    split: dict[str, dict[str, Any]] = {}
    moved = _with_cached(curated["prices"]) != new["prices"]
    for alias in curated["aliases"]:
        own = fresh.get(alias)
        if own is not None and _with_cached(own["prices"]) != new["prices"]:
            split[alias] = added(alias, own, as_of=as_of, source=source)
        elif own is None and moved and _DATED.search(alias):
            split[alias] = {**curated, "aliases": []}
    return split


def refresh_catalog(
    catalog: Mapping[str, Any], wheel: WheelPrices, *, today: date, add: Sequence[str] = ()
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the new catalog document, names refreshed, names the wheel does not list)."""
    fresh, _ = convert_price_map(
        parse_price_map(wheel.content, wheel.origin), as_of=today.isoformat(), source=wheel.source
    )
    as_of, source = today.isoformat(), wheel.source
    models: dict[str, Any] = {}
    done, missing = [], []
    for name, entry in catalog["models"].items():
        if name not in fresh:
            models[name] = entry
            missing.append(name)
            continue
        new = refreshed(entry, fresh[name], as_of=as_of, source=source)
        for alias, split in _split_aliases(entry, new, fresh, as_of=as_of, source=source).items():
            new["aliases"] = [a for a in new["aliases"] if a != alias]
            models[alias] = split
        models[name] = new
        done.append(name)
    for name in add:
        if name in models:
            continue
        if name not in fresh:
            raise SystemExit(f"{name}: not in {wheel.as_of}'s price map")
        models[name] = added(name, fresh[name], as_of=as_of, source=source)
        done.append(name)
    # Entries that keep their own source: dropped by the wheel, or a snapshot split off above.
    kept = [name for name in models if name not in fresh]
    doc = {**catalog, "models": models}
    doc["refreshed"] = {"from": wheel.as_of, "on": as_of, "missing_from_wheel": kept}
    return doc, done, missing


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pricing.catalog_refresh WHEEL [--add NAME ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="a litellm wheel (pip download litellm)")
    parser.add_argument("--add", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    parser.add_argument("--today", type=date.fromisoformat, default=date.today())
    args = parser.parse_args(argv)
    catalog = json.loads(args.catalog.read_text(encoding="utf-8"))
    wheel = read_wheel(args.wheel)
    doc, done, missing = refresh_catalog(catalog, wheel, today=args.today, add=args.add)
    args.catalog.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(done)} entries from {wheel.as_of}; kept as they were: {', '.join(missing) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
