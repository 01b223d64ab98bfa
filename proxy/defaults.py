"""Facts about a config that need the price catalog or the ledger."""

from __future__ import annotations

from proxy.settings import Settings


def catalog_models(provider: str) -> list[tuple[str, str | None]]:
    """(model, tier) pairs the catalog offers for a provider enabled by its key alone."""
    return []


def config_warnings(settings: Settings) -> list[str]:
    return []


def has_proxy_keys(settings: Settings) -> bool:
    auth = settings.config.auth
    return bool(auth and auth.keys)
