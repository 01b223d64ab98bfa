"""The Anthropic provider: OpenAI chat-completions to the Messages API and back.

Requests become ``POST {base}/v1/messages``: the body here, its messages in
``anthropic_turns``. Whole answers are read by ``anthropic_answer``, streams by
``anthropic_stream``, errors by ``anthropic_errors``. Translation choices:

- ``system`` and ``developer`` messages, wherever they appear, become the
  top-level ``system`` text blocks, in order.
- ``tool`` messages become ``tool_result`` blocks in a user turn; consecutive
  turns of one role are merged, since Anthropic wants alternating roles.
  Empty text parts are left out, as Anthropic rejects empty text blocks.
- ``max_completion_tokens`` (else ``max_tokens``, else the provider default)
  becomes ``max_tokens``, which Anthropic requires.
- ``temperature`` is clamped into Anthropic's 0..1: below 1 both scales mean
  the same, above 1 there is no Anthropic equivalent. When both
  ``temperature`` and ``top_p`` are given only ``temperature`` is sent, because
  current Claude models reject the pair.
- ``response_format`` ``json_schema`` becomes ``output_config.format`` (native
  structured outputs; a model without them answers 400, which passes through);
  ``json_object`` has no native form and adds a system instruction instead.
- ``user`` (else ``safety_identifier``) becomes ``metadata.user_id``.
- A ``cache_control`` on a text or image part is kept, so clients can place
  Anthropic prompt-cache breakpoints.
- Dropped, as Anthropic has no equivalent: ``frequency_penalty``,
  ``presence_penalty``, ``logit_bias``, ``seed``, ``service_tier``, ``store``,
  ``metadata``, ``stream_options`` (usage is always streamed), ``prediction``,
  ``reasoning_effort``, ``verbosity``, ``prompt_cache_key``, ``web_search_options``;
  the body is rebuilt from the mapped fields, so any other key is dropped too.
- Rejected with a 400 naming the parameter, as dropping them would silently
  change the answer: ``n`` > 1, ``logprobs``, audio output, the legacy
  ``functions``/``function_call`` and ``function``-role messages, and content
  parts other than text and images.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from proxy.errors import RequestError, UpstreamStatusError
from proxy.providers.anthropic_answer import chat_completion
from proxy.providers.anthropic_errors import error_from_response
from proxy.providers.anthropic_stream import AnthropicStreamTranslator
from proxy.providers.anthropic_turns import Block, system_and_turns
from proxy.providers.base import ChatCall, ChatResult, ProviderSettings, UpstreamRequest
from proxy.providers.endpoint import JSON, Endpoint

ANTHROPIC_VERSION = "2023-06-01"
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


class AnthropicProvider:
    """Speaks Anthropic's Messages API on behalf of OpenAI chat-completions clients."""

    def __init__(self, settings: ProviderSettings, *, default_max_tokens: int = 4096) -> None:
        self.settings = settings
        self.default_max_tokens = default_max_tokens
        # Configured headers may pin another API version or add anthropic-beta.
        self._endpoint = Endpoint(
            settings,
            root=_api_root(settings.base_url),
            key_header="x-api-key",
            defaults={"anthropic-version": ANTHROPIC_VERSION},
            fixed={"content-type": JSON},
            lower_configured=True,
        )
        self._messages_url = self._endpoint.url(MESSAGES_PATH)

    def build_chat_request(
        self, call: ChatCall, *, upstream_model: str, stream: bool
    ) -> UpstreamRequest:
        """The ``POST /v1/messages`` request for an OpenAI chat-completions call.

        The body is always translated (``call.raw`` is not used). Raises
        ``RequestError`` naming the parameter Anthropic cannot honour.
        """
        payload = build_messages_body(
            call.body,
            model=upstream_model,
            stream=stream,
            default_max_tokens=self.default_max_tokens,
        )
        content = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return self._endpoint.post(self._messages_url, content, client_key=call.client_key)

    def parse_chat_response(self, content: bytes, *, model: str) -> ChatResult:
        """The ``chat.completion`` for a 2xx Messages API body, labelled ``model``."""
        return chat_completion(content, model=model, provider=self.settings.name)

    def stream_translator(self, *, model: str) -> AnthropicStreamTranslator:
        """A fresh translator for one streamed answer, labelled ``model``."""
        return AnthropicStreamTranslator(provider=self.settings.name, model=model)

    def map_error(
        self, status: int, content: bytes, headers: Mapping[str, str]
    ) -> UpstreamStatusError:
        """The error for a non-2xx answer, from Anthropic's ``{"type": "error"}`` body."""
        secrets = [self.settings.api_key] if self.settings.api_key else []
        return error_from_response(
            status, content, headers, provider=self.settings.name, secrets=secrets
        )


MESSAGES_PATH = "v1/messages"


def _api_root(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def messages_url(base_url: str) -> str:
    """``{base}/v1/messages``, for a base given with or without ``/v1`` or a final slash."""
    return f"{_api_root(base_url)}/{MESSAGES_PATH}"


def build_messages_body(
    body: Mapping[str, Any], *, model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat-completions ``body``."""
    _reject_unsupported(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty array", param="messages")
    system, turns = system_and_turns(messages)
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": turns,
    }
    out.update(_output_format(body, system))
    if system:
        out["system"] = system
    out.update(_sampling(body))
    out.update(_tools(body))
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True
    return out


def _reject_unsupported(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise RequestError("anthropic models return one choice; n must be 1", param="n")
    if body.get("logprobs"):
        raise RequestError("anthropic models do not return logprobs", param="logprobs")
    modalities = body.get("modalities")
    if body.get("audio") or (isinstance(modalities, list) and "audio" in modalities):
        raise RequestError("anthropic models do not produce audio", param="modalities")
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise RequestError(f"{legacy} is not supported here; use tools", param=legacy)


def _max_tokens(body: Mapping[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RequestError(f"{name} must be a positive integer", param=name)
        return value
    return default


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(1.0, max(0.0, float(temperature)))
    elif isinstance(top_p, int | float) and not isinstance(top_p, bool):
        out["top_p"] = float(top_p)
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str) and s]
    return out


def _output_format(body: Mapping[str, Any], system: list[Block]) -> dict[str, Any]:
    """``output_config`` for ``response_format``; ``json_object`` appends to ``system``."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
        return {}
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise RequestError(
                "response_format.json_schema.schema must be an object",
                param="response_format",
            )
        return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    raise RequestError(f"response_format type {kind!r} is not supported", param="response_format")


def _tools(body: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_choice``; both are left out when the client sent no tools."""
    tools = body.get("tools")
    if not tools:
        return {}
    if not isinstance(tools, list):
        raise RequestError("tools must be an array", param="tools")
    out: dict[str, Any] = {"tools": [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]}
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice:
        out["tool_choice"] = choice
    return out


def _tool(tool: Any, where: str) -> Block:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise RequestError(f"{where} must be a function tool", param=where)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.function.name is missing", param=f"{where}.function.name")
    out: Block = {"name": name}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    parameters = function.get("parameters")
    out["input_schema"] = parameters if isinstance(parameters, dict) else {"type": "object"}
    if function.get("strict") is True:
        out["strict"] = True
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice is None:
        return {}
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise RequestError("tool_choice is not a supported value", param="tool_choice")
