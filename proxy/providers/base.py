"""The interface every provider module implements.

A provider is a set of pure transforms between OpenAI's chat-completions
format (what clients speak) and its upstream's wire format. It never does I/O:
``proxy.pipeline.upstream`` sends what ``build_chat_request`` returns over the
pooled client and feeds the answer back to ``parse_chat_response`` or to a
``StreamTranslator``. That keeps each provider testable with plain values.
Where a request goes and the headers it carries come from one place for
every provider, ``proxy.providers.endpoint``.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pricing.usage import Usage
from proxy.errors import UpstreamStatusError
from proxy.providers.sse import SSEEvent


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """What a provider module needs from the config."""

    name: str
    type: str
    base_url: str
    api_key: str | None = None
    forward_client_key: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A finished non-streaming answer, already in OpenAI's format."""

    body: bytes  # exactly what the client receives
    parsed: dict[str, Any]  # the same answer, parsed
    usage: Usage | None  # None when the upstream reported none


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One ``chat.completion.chunk`` to deliver to the client.

    ``raw`` is the upstream's own serialisation when the chunk passes through
    unchanged, so it is relayed without re-serialising; otherwise ``None``.
    """

    chunk: dict[str, Any]
    raw: str | None = None


class StreamTranslator(ABC):
    """Turns one upstream stream's SSE events into OpenAI chunks.

    A provider's translator implements ``feed``, which sets ``_usage`` when
    the upstream reports it and ``_finished`` at its complete end.
    """

    _usage: Usage | None = None
    _finished: bool = False

    @abstractmethod
    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        """Chunks for one upstream event. Raises ``UpstreamError`` on an error event."""

    @property
    def finished(self) -> bool:
        """Whether the upstream signalled a complete end of stream."""
        return self._finished

    @property
    def usage(self) -> Usage | None:
        """Usage reported by the upstream, once it has arrived."""
        return self._usage


class ChatCall(Protocol):
    """A client's chat request as a provider reads it (the pipeline's exchange is one)."""

    body: dict[str, Any]  # the parsed JSON body
    raw: bytes  # the body's bytes as the client sent them
    client_key: str | None  # the key the client presented, if any


MAX_RETRY_AFTER_S = 3600.0
REDACTED = "[redacted]"
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or a numeric ``Retry-After``; absurd values dropped."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, MAX_RETRY_AFTER_S)
    return None


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each secret, and anything sent as a bearer token, blanked out.

    Upstreams echo keys in their error messages ("Incorrect API key provided:
    ..."); nothing of a key may reach a client or a log.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


class Provider(Protocol):
    """What each module in ``proxy.providers`` exposes as ``PROVIDER``'s type."""

    settings: ProviderSettings

    def build_chat_request(
        self, call: ChatCall, *, upstream_model: str, stream: bool
    ) -> UpstreamRequest:
        """The upstream request for an OpenAI chat-completions call.

        A provider that needs no change to the body sends ``call.raw`` as it is.
        """
        ...

    def parse_chat_response(self, content: bytes, *, model: str) -> ChatResult:
        """The client's answer from a 2xx upstream body.

        Raises ``UpstreamProtocolError`` for a body it cannot read.
        """
        ...

    def stream_translator(self, *, model: str) -> StreamTranslator:
        """A fresh translator for one streamed answer."""
        ...

    def map_error(
        self, status: int, content: bytes, headers: Mapping[str, str]
    ) -> UpstreamStatusError:
        """The error for a non-2xx upstream answer, by status and body shape."""
        ...
