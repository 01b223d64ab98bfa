"""Embedder ``wordllama``: WordLlama's static text embedding, local and free.

The model (``routing.embedding.TextEmbedder``, 256 dimensions, 32 MiB of
weights) is loaded once per process by the application's assembly and shared
with the router; this class only adapts it to the ``Embedder`` protocol.
Embedding is CPU work of about 0.1 ms for a short turn and 0.3-0.4 ms for the
longest window the cache embeds, so it runs inline on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cache.semantic.vectors import Vector

if TYPE_CHECKING:  # the model's libraries load with the model, not with the proxy
    from routing.embedding import TextEmbedder

WORDLLAMA: Final = "wordllama"


class WordLlamaEmbedder:
    """Embedder ``wordllama`` over a shared :class:`TextEmbedder`."""

    def __init__(self, model: TextEmbedder) -> None:
        self.model = model
        self.name = WORDLLAMA
        self.dim = model.dim
        self.overhead_micro = 0

    async def embed(self, texts: list[str]) -> list[Vector]:
        """One unit vector per text; costs nothing, so ``overhead_micro`` stays 0."""
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> Vector:
        """The embedding of one text, synchronously (it does no I/O)."""
        values: Vector = self.model.embed(normalise(text)).tolist()
        return values


def normalise(text: str) -> str:
    """Whitespace runs as one space: the tokenizer makes each extra space a token."""
    return " ".join(text.split())
