"""The proxy's own embedding calls (a ``provider:<model>`` semantic-cache embedder).

They go to the configured provider's ``/v1/embeddings`` over the same pooled
client as client traffic; their cost is charged to the request that caused
them, as overhead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pricing.usage import Usage
from proxy.errors import RequestError, UpstreamProtocolError
from proxy.pipeline.accounting import Accountant
from proxy.pipeline.forward import Forwarder, upstream_status_error
from proxy.pipeline.models import ModelTable
from proxy.providers.openai import OpenAIProvider


class EmbeddingsClient:
    def __init__(self, forwarder: Forwarder, *, models: ModelTable, accountant: Accountant) -> None:
        self._forwarder = forwarder
        self._models = models
        self._accountant = accountant

    async def embed(self, model: str, texts: list[str]) -> tuple[Sequence[Sequence[float]], Usage]:
        target = self._models.resolve(model)
        provider = self._forwarder.provider(target.provider)
        if not isinstance(provider, OpenAIProvider):
            raise RequestError(
                f"embedding model {model!r} must be served by a provider of type openai"
            )
        body = {"model": target.model.upstream_name, "input": texts}
        request = provider.build_passthrough_request("embeddings", b"", client_key=None, body=body)
        response = await self._forwarder.clients.send(target.provider, request)
        if response.status_code >= 400:
            raise upstream_status_error(
                provider, response.status_code, response.content, response.headers
            )
        try:
            parsed = json.loads(response.content)
            vectors = [
                item["embedding"] for item in sorted(parsed["data"], key=lambda d: d["index"])
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamProtocolError(
                f"{target.provider}: malformed embeddings answer", provider=target.provider
            ) from exc
        tokens = int((parsed.get("usage") or {}).get("prompt_tokens") or 0)
        return vectors, Usage(prompt_tokens=tokens)

    def cost_of(self, model: str, usage: Usage) -> int:
        """Micro-dollars of one embedding call (0 when the model's price is unknown)."""
        cost = self._accountant.quote(model, usage.prompt_tokens).cost_micro(usage)
        return cost or 0
