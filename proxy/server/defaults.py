"""Facts about a config that need the price catalog or the ledger."""

from __future__ import annotations

from decimal import Decimal

from pricing.catalog import ModelEntry, load_catalog
from pricing.ledger import load_keys
from pricing.ledger.factory import sqlite_path
from proxy.config import Tier
from proxy.errors import SpendgateError
from proxy.settings import Settings

# A provider enabled by its environment key alone gets the catalog's chat
# models, tiered by output price (USD per 1M tokens): the cheap ones are the
# ones routing may send easy requests to.
SMALL_MAX_OUTPUT_PRICE = Decimal("2.00")
MEDIUM_MAX_OUTPUT_PRICE = Decimal("8.00")


def tier_by_price(entry: ModelEntry) -> Tier | None:
    if entry.mode != "chat":
        return None
    if entry.prices.output <= SMALL_MAX_OUTPUT_PRICE:
        return "small"
    if entry.prices.output <= MEDIUM_MAX_OUTPUT_PRICE:
        return "medium"
    return "large"


def catalog_models(provider: str) -> list[tuple[str, Tier | None]]:
    """(model, tier) pairs the catalog offers for a provider enabled by its key alone."""
    return [
        (entry.name, tier_by_price(entry))
        for entry in load_catalog().entries.values()
        if entry.provider == provider
    ]


def config_warnings(settings: Settings) -> list[str]:
    """Things that work but deserve attention: unknown prices, keyless providers."""
    config = settings.config
    catalog = load_catalog()
    warnings = []
    for i, model in enumerate(config.models):
        if model.price is None and catalog.get(model.upstream_name) is None:
            warnings.append(
                f"models[{i}] ({model.name}): no known price; its rows are flagged "
                f"price_source=unknown until you add models[{i}].price"
            )
    for name, provider in config.providers.items():
        if provider.api_key is None and not provider.forward_client_key:
            warnings.append(f"providers.{name}: no api_key (fine for local servers that need none)")
    return warnings


def has_proxy_keys(settings: Settings) -> bool:
    """Keys in the config, or created with ``spendgate keys create`` (in the ledger)."""
    auth = settings.config.auth
    if auth and auth.keys:
        return True
    url = settings.config.ledger.url
    if url.startswith("sqlite:///"):
        path = sqlite_path(url)
        if path is None or not path.exists():  # no ledger yet, so no stored key: create none
            return False
    try:
        return bool(load_keys(url))
    except SpendgateError:
        return False
