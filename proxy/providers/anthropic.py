"""The Anthropic provider: OpenAI chat-completions to the Messages API and back.

Requests become ``POST {base}/v1/messages`` (this module); answers, streams and
errors are read by ``proxy.providers.anthropic_stream``. Translation choices:

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
from proxy.providers.anthropic_stream import (
    AnthropicStreamTranslator,
    chat_completion,
    error_from_response,
)
from proxy.providers.base import ChatResult, ProviderSettings, UpstreamRequest

ANTHROPIC_VERSION = "2023-06-01"
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

Block = dict[str, Any]


class AnthropicProvider:
    """Speaks Anthropic's Messages API on behalf of OpenAI chat-completions clients."""

    def __init__(self, settings: ProviderSettings, *, default_max_tokens: int = 4096) -> None:
        self.settings = settings
        self.default_max_tokens = default_max_tokens

    def build_chat_request(
        self,
        body: dict[str, Any],
        *,
        raw: bytes,
        upstream_model: str,
        stream: bool,
        client_key: str | None,
    ) -> UpstreamRequest:
        """The ``POST /v1/messages`` request for an OpenAI chat-completions ``body``.

        Raises ``RequestError`` naming the parameter Anthropic cannot honour.
        """
        del raw  # the body always needs translating
        payload = build_messages_body(
            body, model=upstream_model, stream=stream, default_max_tokens=self.default_max_tokens
        )
        return UpstreamRequest(
            method="POST",
            url=messages_url(self.settings.base_url),
            headers=self._headers(client_key),
            content=json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
        )

    def _headers(self, client_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        # Configured headers may pin another API version or add anthropic-beta.
        headers.update({k.lower(): v for k, v in self.settings.headers.items()})
        forwarded = client_key if self.settings.forward_client_key else None
        key = forwarded or self.settings.api_key
        if key:
            headers["x-api-key"] = key
        headers["content-type"] = "application/json"
        return headers

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


def messages_url(base_url: str) -> str:
    """``{base}/v1/messages``, for a base given with or without ``/v1`` or a final slash."""
    return base_url.rstrip("/").removesuffix("/v1") + "/v1/messages"


def build_messages_body(
    body: Mapping[str, Any], *, model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat-completions ``body``."""
    _reject_unsupported(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty array", param="messages")
    system, turns = _system_and_turns(messages)
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


def _system_and_turns(messages: list[Any]) -> tuple[list[Block], list[dict[str, Any]]]:
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), where))
            continue
        if role == "user":
            turn = ("user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            turn = ("assistant", _assistant_blocks(message, where))
        elif role == "tool":
            turn = ("user", [_tool_result(message, where)])
        else:
            raise RequestError(f"{where}.role {role!r} is not supported", param=f"{where}.role")
        if not turn[1]:
            continue
        if turns and turns[-1]["role"] == turn[0]:
            turns[-1]["content"].extend(turn[1])
        else:
            turns.append({"role": turn[0], "content": turn[1]})
    if not turns:
        raise RequestError("messages must hold a user or assistant message", param="messages")
    return system, turns


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    raise RequestError(f"{where}.content must be a string or an array of parts", param=where)


def _text_block(part: dict[str, Any], where: str) -> Block | None:
    text = part.get("text", part.get("refusal"))
    if not isinstance(text, str):
        raise RequestError(f"{where} text part has no text", param=where)
    if not text:
        return None
    return _keep_cache_control(part, {"type": "text", "text": text})


def _text_blocks(content: Any, where: str) -> list[Block]:
    blocks: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        if part.get("type") not in ("text", "refusal"):
            raise RequestError(
                f"{where}.content[{j}] must be text", param=f"{where}.content[{j}].type"
            )
        block = _text_block(part, f"{where}.content[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _user_blocks(content: Any, where: str) -> list[Block]:
    blocks: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        at = f"{where}.content[{j}]"
        kind = part.get("type")
        if kind == "text":
            block = _text_block(part, at)
        elif kind == "image_url":
            block = _image_block(part, at)
        else:
            raise RequestError(
                f"content part type {kind!r} is not supported by anthropic models",
                param=f"{at}.type",
            )
        if block is not None:
            blocks.append(block)
    return blocks


def _image_block(part: dict[str, Any], where: str) -> Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise RequestError(f"{where}.image_url.url is missing", param=f"{where}.image_url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or media_type not in IMAGE_MEDIA_TYPES:
            raise RequestError(
                "image data URLs must be base64 JPEG, PNG, GIF or WebP",
                param=f"{where}.image_url",
            )
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return _keep_cache_control(part, {"type": "image", "source": source})


def _keep_cache_control(part: dict[str, Any], block: Block) -> Block:
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str) -> list[Block]:
    blocks = _text_blocks(message.get("content"), where)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise RequestError(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise RequestError(f"{at} needs an id and a function", param=at)
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError as exc:
            raise RequestError(
                f"{at}.function.arguments is not valid JSON", param=f"{at}.function.arguments"
            ) from exc
        if not isinstance(parsed, dict):
            raise RequestError(
                f"{at}.function.arguments must be a JSON object",
                param=f"{at}.function.arguments",
            )
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function.get("name"), "input": parsed}
        )
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise RequestError(f"{where}.tool_call_id is missing", param=f"{where}.tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        text = _text_blocks(content, where)
        if text:
            block["content"] = text
    return block


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
