"""Where a provider's requests go and the headers they carry, worked out once.

Every provider posts JSON to ``{root}/{path}`` with the configured
``headers`` and a key: its own ``api_key``, or the client's key when
``forward_client_key`` is set and the client sent one. What differs between
APIs is data given here: the header that carries the key (and its prefix),
the headers a provider sets before the configured ones (defaults they may
override) and after them (values they may not), and whether configured names
are lower-cased first.

Nothing here depends on the request but the client's key and whether it
streams, so both header sets are built with the provider; a request costs
one dict copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from proxy.providers.base import ProviderSettings, UpstreamRequest

JSON = "application/json"
_NONE: Mapping[str, str] = MappingProxyType({})


class Endpoint:
    """The URLs and headers of one configured provider."""

    __slots__ = ("_forward", "_key_header", "_key_prefix", "_plain", "_root", "_streaming")

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        root: str,
        key_header: str,
        key_prefix: str = "",
        defaults: Mapping[str, str] = _NONE,
        fixed: Mapping[str, str] = _NONE,
        streaming: Mapping[str, str] = _NONE,
        lower_configured: bool = False,
    ) -> None:
        """``root`` is the URL that paths hang off (no final slash); ``streaming``
        holds the headers a streamed request sets on top of ``fixed``."""
        configured = settings.headers
        if lower_configured:
            configured = {name.lower(): value for name, value in configured.items()}
        plain = {**defaults, **configured, **fixed}
        streamed = {**plain, **streaming}
        if settings.api_key:
            # Set last so that it wins over a configured header of the same name.
            for headers in (plain, streamed):
                headers[key_header] = key_prefix + settings.api_key
        self._root = root
        self._plain = plain
        self._streaming = streamed
        self._key_header = key_header
        self._key_prefix = key_prefix
        self._forward = settings.forward_client_key

    def url(self, path: str) -> str:
        """``{root}/{path}``."""
        return f"{self._root}/{path}"

    def headers(self, client_key: str | None, *, stream: bool = False) -> dict[str, str]:
        """A fresh copy of the request headers, with the client's key if it is forwarded."""
        headers = (self._streaming if stream else self._plain).copy()
        if self._forward and client_key:
            headers[self._key_header] = self._key_prefix + client_key
        return headers

    def post(
        self, url: str, content: bytes, *, client_key: str | None, stream: bool = False
    ) -> UpstreamRequest:
        """The ``POST`` of ``content`` to ``url`` (from :meth:`url`)."""
        return UpstreamRequest("POST", url, self.headers(client_key, stream=stream), content)
