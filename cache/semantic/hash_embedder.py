"""A local lexical embedding: signed hashing of character n-grams and words.

No model and no download: the text is normalised (Unicode NFKC, lower case,
punctuation to spaces, runs of whitespace collapsed), then every character
n-gram of the padded UTF-8 bytes and every word is hashed with CRC-32 into one
of ``dim`` buckets with a sign taken from another bit of the hash, and the
bucket vector is L2-normalised. Two texts that differ only in case,
whitespace, punctuation or a small edit share almost all features and land
near cosine 1.0; texts that share no phrasing land near 0.

CRC-32 rather than Python's ``hash`` because ``hash`` of ``str`` is salted per
process, and every replica must embed a text to the same vector.
"""

from __future__ import annotations

import math
import operator
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import repeat

from cache.semantic.vectors import Vector

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# CRC-32 start value for words, so the word "abc" and the 3-gram "abc" differ.
_WORD_SEED = 0x5EED5EED


@dataclass(frozen=True, slots=True)
class HashEmbedderConfig:
    """Shape of the hashed embedding; changing it changes every vector."""

    dim: int = 1024  # a power of two
    min_n: int = 3
    max_n: int = 5
    word_weight: float = 1.0


def normalise_text(text: str) -> str:
    """Lower-cased NFKC text with punctuation removed and whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


class HashEmbedder:
    """Embedder ``hash``: hashed character n-grams plus word unigrams."""

    def __init__(self, config: HashEmbedderConfig = HashEmbedderConfig()) -> None:
        if config.dim < 2 or config.dim & (config.dim - 1) or not 1 <= config.min_n <= config.max_n:
            raise ValueError(f"invalid hash embedder config {config!r}: dim must be a power of 2")
        self._config = config
        self._mask = 2 * config.dim - 1
        self.name = "hash"
        self.dim = config.dim
        self.overhead_micro = 0

    async def embed(self, texts: list[str]) -> list[Vector]:
        """One unit vector per text; costs nothing, so ``overhead_micro`` stays 0."""
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> Vector:
        """The embedding of one text, synchronously (it does no I/O)."""
        config = self._config
        normal = normalise_text(text)
        padded = f" {normal} ".encode()
        size = len(padded)
        features = [
            padded[i : i + n]
            for n in range(config.min_n, config.max_n + 1)
            for i in range(size - n + 1)
        ]
        # The low bit of the hash is the sign, the next bits the bucket; counting
        # (sign, bucket) codes with Counter keeps the per-feature work in C.
        codes = Counter(map(operator.and_, map(zlib.crc32, features), repeat(self._mask)))
        words = Counter(
            map(
                operator.and_,
                map(zlib.crc32, normal.encode().split(), repeat(_WORD_SEED)),
                repeat(self._mask),
            )
        )
        # Accumulate sparsely: a short text touches a few hundred of the buckets.
        sparse: dict[int, float] = {}
        for code, count in codes.items():
            sparse[code >> 1] = sparse.get(code >> 1, 0.0) + (-count if code & 1 else count)
        weight = config.word_weight
        for code, count in words.items():
            signed = -weight * count if code & 1 else weight * count
            sparse[code >> 1] = sparse.get(code >> 1, 0.0) + signed
        values = [0.0] * config.dim
        norm = math.sqrt(math.fsum(v * v for v in sparse.values()))
        if norm == 0.0:
            return values
        for index, value in sparse.items():
            values[index] = value / norm
        return values
