"""Provider modules, one per upstream API type, found through ``PROVIDER_TYPES``."""

from __future__ import annotations

from collections.abc import Callable

from proxy.providers.anthropic import AnthropicProvider
from proxy.providers.base import Provider, ProviderSettings
from proxy.providers.openai import OpenAIProvider

PROVIDER_TYPES: dict[str, Callable[[ProviderSettings], Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}


def build_provider(settings: ProviderSettings) -> Provider:
    """The provider object for one configured provider."""
    return PROVIDER_TYPES[settings.type](settings)
