"""A static text embedding, offline: WordLlama's 256-dimension ``l2_supercat`` model.

The weights (a 32,000 x 256 token table) and the tokenizer ship inside the
``wordllama`` wheel on PyPI (MIT); an embedding is the mean of the token
vectors, L2-normalised. Nothing is ever downloaded.

The files are read directly (``safetensors`` and ``tokenizers``) instead of
through ``WordLlama.load``: importing the ``wordllama`` package calls
``logging.basicConfig(level=INFO)``, which would print every library's INFO
logs (httpx logs each request) from a server that configures its own logging,
and its loader falls back to the network when a file is missing. The vectors
are the same as ``WordLlama.embed(text, norm=True)``'s.

Cost grows with the text, so callers embed a bounded window of it
(``routing.features.window``): about 0.1 ms for a short prompt, about 0.3 ms
for the largest window.

    embedder = TextEmbedder.load()
    vector = embedder.embed("What year did World War II end?")
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

DIM = 256
WEIGHTS_FILE = "weights/l2_supercat_256.safetensors"
TOKENIZER_FILE = "tokenizers/l2_supercat_tokenizer_config.json"
_TENSOR = "embedding.weight"

Vector = npt.NDArray[np.float32]


class EmbedderUnavailableError(RuntimeError):
    """The embedding model's files are not installed (``pip install wordllama``)."""


@dataclass(frozen=True, slots=True)
class EmbeddingFiles:
    """Where the model's two files are."""

    weights: Path
    tokenizer: Path


def wordllama_files() -> EmbeddingFiles:
    """The files inside the installed ``wordllama`` package, found without importing it."""
    spec = importlib.util.find_spec("wordllama")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise EmbedderUnavailableError("the wordllama package is not installed")
    root = Path(locations[0])
    files = EmbeddingFiles(weights=root / WEIGHTS_FILE, tokenizer=root / TOKENIZER_FILE)
    missing = [str(p) for p in (files.weights, files.tokenizer) if not p.is_file()]
    if missing:
        raise EmbedderUnavailableError(f"wordllama is installed without {', '.join(missing)}")
    return files


class TextEmbedder:
    """Mean-pooled, L2-normalised token embeddings; one instance serves every caller.

    The token table stays in float16, as shipped (16 MiB, half of float32's);
    one text's rows are converted to float32 and then averaged, which is
    several times faster than numpy's float16 reduction and gives the same
    values.
    """

    def __init__(self, table: npt.NDArray[np.float16], tokenizer: Tokenizer) -> None:
        if table.ndim != 2 or table.shape[1] != DIM:
            raise ValueError(f"expected a token table of dimension {DIM}, got {table.shape}")
        self._table = table
        self._last_id = table.shape[0] - 1
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.dim = DIM

    @classmethod
    def load(cls, files: EmbeddingFiles | None = None) -> TextEmbedder:
        """Read the model from ``files`` (default: the installed ``wordllama`` wheel)."""
        files = files or wordllama_files()
        try:
            table = load_file(str(files.weights))[_TENSOR]
            tokenizer = Tokenizer.from_file(str(files.tokenizer))
        # tokenizers and safetensors report a bad file as a plain Exception.
        except Exception as exc:
            raise EmbedderUnavailableError(f"cannot read the embedding model: {exc}") from exc
        return cls(np.ascontiguousarray(table, dtype=np.float16), tokenizer)

    def token_ids(self, text: str) -> list[int]:
        """The model's token ids for ``text`` (no special tokens)."""
        # The batch call without character offsets gives the same ids in about 60 % of
        # the time of ``encode``, which computes offsets nothing here reads.
        ids: list[int] = self._tokenizer.encode_batch_fast([text], add_special_tokens=False)[0].ids
        return ids

    def embed(self, text: str) -> Vector:
        """A unit vector of ``DIM`` float32 values; all zeros for a text with no tokens."""
        ids = self.token_ids(text)
        if not ids:
            return np.zeros(DIM, dtype=np.float32)
        rows = self._table[np.minimum(ids, self._last_id)]
        mean: Vector = rows.astype(np.float32).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0.0 else mean

    def embed_many(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text, as ``embed`` gives it (for fitting and evaluation)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed(text)
        return out
