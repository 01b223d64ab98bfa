"""OpenAI and every OpenAI-compatible API (vLLM, Ollama, Groq, Together, ...).

Requests pass through as the client sent them. The body is re-serialised only
when something in it must change: the model name (``upstream`` differs from
the name the client used) or ``stream_options.include_usage`` (the proxy
always asks a stream for its usage so that it can bill it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pricing.usage import Usage
from proxy.errors import UpstreamProtocolError, UpstreamStatusError
from proxy.providers.base import (
    ChatCall,
    ChatResult,
    ProviderSettings,
    StreamChunk,
    StreamTranslator,
    UpstreamRequest,
    redact,
    retry_after_of,
)
from proxy.providers.endpoint import JSON, Endpoint
from proxy.providers.sse import SSEEvent


def usage_from_openai(raw: Mapping[str, Any] | None) -> Usage | None:
    """Normalise an OpenAI ``usage`` object (None when absent or empty)."""
    if not isinstance(raw, Mapping):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        cached_prompt_tokens=_int(prompt_details.get("cached_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        source="upstream",
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _error_fields(content: bytes) -> tuple[str | None, str | None, str | None, str | None]:
    try:
        body = json.loads(content)
    except ValueError:
        return None, None, None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error, None, None, None
    if not isinstance(error, dict):
        return None, None, None, None
    code = error.get("code")
    return (
        _str_or_none(error.get("message")),
        _str_or_none(error.get("type")),
        _str_or_none(error.get("param")),
        str(code) if code is not None else None,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class OpenAIStreamTranslator(StreamTranslator):
    """Relays OpenAI chunks unchanged, watching for usage and the end."""

    def __init__(self, provider: str, *, secrets: tuple[str, ...] = ()) -> None:
        self._provider = provider
        self._secrets = secrets

    def feed(self, event: SSEEvent) -> list[StreamChunk]:
        data = event.data
        if data == "[DONE]":
            self._finished = True
            return []
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{self._provider}: malformed event in the stream", provider=self._provider
            ) from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError(
                f"{self._provider}: malformed event in the stream", provider=self._provider
            )
        if "error" in chunk:
            message, etype, _, code = _error_fields(data.encode())
            raise UpstreamStatusError(
                redact(f"{self._provider}: {message or 'error in the stream'}", self._secrets),
                provider=self._provider,
                upstream_status=502,
                error_type=etype,
                code=code,
            )
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        return [StreamChunk(chunk, raw=data)]


class OpenAIProvider:
    """Provider for ``type: openai``."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._endpoint = Endpoint(
            settings,
            root=settings.base_url.rstrip("/"),
            key_header="authorization",
            key_prefix="Bearer ",
            defaults={"content-type": JSON, "accept": JSON},
            streaming={"accept": "text/event-stream"},
        )
        self._chat_url = self._endpoint.url("chat/completions")

    def build_chat_request(
        self, call: ChatCall, *, upstream_model: str, stream: bool
    ) -> UpstreamRequest:
        body, content = call.body, call.raw
        changed = body.get("model") != upstream_model
        options = body.get("stream_options")
        needs_usage = stream and not (isinstance(options, dict) and options.get("include_usage"))
        if changed or needs_usage:
            body = dict(body, model=upstream_model)
            if needs_usage:
                extra = options if isinstance(options, dict) else {}
                body["stream_options"] = {**extra, "include_usage": True}
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return self._endpoint.post(
            self._chat_url, content, client_key=call.client_key, stream=stream
        )

    def build_passthrough_request(
        self, path: str, raw: bytes, *, client_key: str | None, body: dict[str, Any] | None = None
    ) -> UpstreamRequest:
        """A request to another OpenAI endpoint (``embeddings``, ``responses``).

        ``body`` replaces ``raw`` when given (a changed model name).
        """
        content = raw
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return self._endpoint.post(self._endpoint.url(path), content, client_key=client_key)

    def parse_chat_response(self, content: bytes, *, model: str) -> ChatResult:
        try:
            parsed = json.loads(content)
        except ValueError as exc:
            raise UpstreamProtocolError(
                f"{self.settings.name}: the upstream answered with malformed JSON",
                provider=self.settings.name,
            ) from exc
        if not isinstance(parsed, dict) or not isinstance(parsed.get("choices"), list):
            raise UpstreamProtocolError(
                f"{self.settings.name}: the upstream answer is not a chat completion",
                provider=self.settings.name,
            )
        return ChatResult(content, parsed, usage_from_openai(parsed.get("usage")))

    def stream_translator(self, *, model: str) -> OpenAIStreamTranslator:
        secrets = (self.settings.api_key,) if self.settings.api_key else ()
        return OpenAIStreamTranslator(self.settings.name, secrets=secrets)

    def map_error(
        self, status: int, content: bytes, headers: Mapping[str, str]
    ) -> UpstreamStatusError:
        message, etype, param, code = _error_fields(content)
        name = self.settings.name
        if message and 400 <= status < 500:
            text = message  # a client error reaches the client as the upstream worded it
        else:
            text = f"{name}: {message or f'the upstream answered HTTP {status}'}"
        secrets = (self.settings.api_key,)
        return UpstreamStatusError(
            redact(text, secrets),
            provider=name,
            upstream_status=status,
            error_type=etype,
            param=param,
            code=redact(code, secrets) if code else None,
            retry_after_s=retry_after_of(headers),
        )
