"""The ``Embedder`` protocol and the embedders behind it, chosen by a spec string.

Specs: ``wordllama`` (local, free, the default: WordLlama's static embedding,
shipped in the ``wordllama`` wheel), ``hash`` (local, free, hashed n-grams),
``provider:<model>`` (a provider's ``/v1/embeddings``, paid, its cost
reported as overhead) and ``sentence-transformers:<name>`` (a locally
installed model, never downloaded).

``overhead_micro`` holds the cost of the embedder's most recent ``embed``
call. It is set just before ``embed`` returns, so a caller that reads it
right after its own ``await`` (with no other ``await`` between) reads its own
call's cost even when many lookups run concurrently on one event loop.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio.to_thread

from cache.semantic.hash_embedder import HashEmbedder
from cache.semantic.vectors import Vector, l2_normalised
from cache.semantic.wordllama import WORDLLAMA, WordLlamaEmbedder
from pricing.usage import Usage
from proxy.errors import ConfigError

if TYPE_CHECKING:  # numpy, tokenizers and safetensors load with the model only
    from routing.embedding import TextEmbedder

EmbedCall = Callable[[str, list[str]], Awaitable[tuple[Sequence[Sequence[float]], Usage]]]
"""``embed_call(model, texts) -> (vectors, usage)``: one ``/v1/embeddings`` request."""

CostOf = Callable[[str, Usage], int]
"""``cost_of(model, usage) -> micro-dollars`` for an embedding call."""

PROVIDER_PREFIX = "provider:"
SENTENCE_TRANSFORMERS_PREFIX = "sentence-transformers:"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of one fixed dimension."""

    name: str
    dim: int
    overhead_micro: int

    async def embed(self, texts: list[str]) -> list[Vector]:
        """One L2-normalised vector per text, in order."""
        ...


class ProviderEmbedder:
    """Embedder ``provider:<model>``: a provider's embeddings endpoint."""

    def __init__(self, model: str, *, embed_call: EmbedCall, cost_of: CostOf, dim: int) -> None:
        self.name = PROVIDER_PREFIX + model
        self.dim = dim
        self.overhead_micro = 0
        self.last_usage: Usage | None = None
        self._model = model
        self._embed_call = embed_call
        self._cost_of = cost_of

    async def embed(self, texts: list[str]) -> list[Vector]:
        """Vectors from the provider; the call's cost goes to ``overhead_micro``.

        Raises whatever ``embed_call`` raises (an ``UpstreamError``), and
        ``ValueError`` when the answer does not fit the request.
        """
        vectors, usage = await self._embed_call(self._model, texts)
        if len(vectors) != len(texts) or any(len(v) != self.dim for v in vectors):
            raise ValueError(
                f"embedding model {self._model} answered {len(vectors)} vectors "
                f"for {len(texts)} texts, expected dimension {self.dim}"
            )
        result = [l2_normalised(v) for v in vectors]
        self.last_usage = usage
        self.overhead_micro = self._cost_of(self._model, usage)
        return result


class SentenceTransformersEmbedder:
    """Embedder ``sentence-transformers:<name>``: a model already on local disk."""

    def __init__(self, model_name: str, *, device: str = "cpu") -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError(
                [
                    f"cache.semantic.embedder: sentence-transformers:{model_name} needs the "
                    "'sentence-transformers' package, which is not installed"
                ]
            )
        module = importlib.import_module("sentence_transformers")
        try:
            # local_files_only: a missing model is a start-up error, never a download.
            self._model: Any = module.SentenceTransformer(
                model_name, device=device, local_files_only=True
            )
        except Exception as exc:  # the library raises OSError, ValueError or its own types
            raise ConfigError(
                [f"cache.semantic.embedder: cannot load local model {model_name!r}: {exc}"]
            ) from exc
        self.name = SENTENCE_TRANSFORMERS_PREFIX + model_name
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.overhead_micro = 0

    async def embed(self, texts: list[str]) -> list[Vector]:
        """Vectors computed in a worker thread so the event loop keeps serving."""
        raw = await anyio.to_thread.run_sync(self._encode, texts)
        return [l2_normalised(v) for v in raw]

    def _encode(self, texts: list[str]) -> list[list[float]]:
        encoded = self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return [list(map(float, row)) for row in encoded]


def build_embedder(
    spec: str,
    *,
    embed_call: EmbedCall | None = None,
    cost_of: CostOf | None = None,
    provider_dim: int | None = None,
    text_embedder: TextEmbedder | None = None,
) -> Embedder:
    """The embedder named by ``spec``; ``ConfigError`` for an unusable spec.

    ``wordllama`` uses ``text_embedder``, the process's shared model (the
    server passes the one its router uses); without it, it loads its own.
    ``provider:<model>`` needs ``embed_call``, ``cost_of`` and ``provider_dim``
    (the model's vector length, e.g. 1536 for text-embedding-3-small).
    """
    if spec == WORDLLAMA:
        return WordLlamaEmbedder(text_embedder or load_text_embedder())
    if spec == "hash":
        return HashEmbedder()
    if spec.startswith(PROVIDER_PREFIX) and spec != PROVIDER_PREFIX:
        if embed_call is None or cost_of is None or provider_dim is None:
            raise ConfigError(
                [f"cache.semantic.embedder: {spec} needs an upstream embeddings client"]
            )
        return ProviderEmbedder(
            spec.removeprefix(PROVIDER_PREFIX),
            embed_call=embed_call,
            cost_of=cost_of,
            dim=provider_dim,
        )
    if spec.startswith(SENTENCE_TRANSFORMERS_PREFIX) and spec != SENTENCE_TRANSFORMERS_PREFIX:
        return SentenceTransformersEmbedder(spec.removeprefix(SENTENCE_TRANSFORMERS_PREFIX))
    raise ConfigError(
        [
            f"cache.semantic.embedder: unknown embedder {spec!r}; use 'wordllama', 'hash', "
            "'provider:<model>' or 'sentence-transformers:<name>'"
        ]
    )


def load_text_embedder() -> TextEmbedder:
    """WordLlama's model from the installed wheel; ``ConfigError`` when it is missing."""
    from routing.embedding import EmbedderUnavailableError, TextEmbedder

    try:
        return TextEmbedder.load()
    except EmbedderUnavailableError as exc:
        raise ConfigError([f"the wordllama text embedding: {exc}"]) from exc
