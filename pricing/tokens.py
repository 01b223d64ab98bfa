"""Offline token counting with tiktoken, with a documented estimate as fallback.

Encodings are built from verified local ``<name>.tiktoken`` rank files (or
``<name>.tiktoken.gz``, checked after decompression);
``tiktoken.get_encoding`` is never called because it downloads. Loading is
lazy but warmable: nothing is read at construction, ``warm()`` (run once at
start-up, typically in a thread) loads every encoding it can, and until an
encoding is loaded, or when it cannot be (missing directory, wrong sha256),
counts are estimates and say so (``source="estimated"``).

Counting rules (OpenAI's chat format, as in its token-counting guide):

* every message costs 3 tokens of framing, plus its string fields (role,
  content, ...); a ``name`` costs 1 extra token; the reply is primed with 3;
* content parts: ``text`` parts count their text; ``image_url`` parts count
  a fixed ``IMAGE_TOKENS_LOW`` (85, detail "low") or ``IMAGE_TOKENS`` (765,
  a 1024x1024 image at high detail) since the image size is not known here;
  any other part counts its compact JSON;
* ``tool_calls`` count the compact JSON of each call;
* offered tools count the compact JSON of the ``tools`` array.

The estimate for a string is ``ceil(utf8_bytes / 4)`` (about 4 bytes per
token for English text), with the same per-message framing.
"""

from __future__ import annotations

import base64
import ctypes
import gzip
import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import tiktoken

logger = logging.getLogger(__name__)

TokenSource = Literal["tiktoken", "estimated"]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS = 765
IMAGE_TOKENS_LOW = 85
BYTES_PER_ESTIMATED_TOKEN = 4

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True, slots=True)
class EncodingSpec:
    """What tiktoken_ext.openai_public would build, minus the download."""

    name: str
    sha256: str
    pat_str: str
    special_tokens: Mapping[str, int]


_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

ENCODINGS: Mapping[str, EncodingSpec] = MappingProxyType(
    {
        "o200k_base": EncodingSpec(
            name="o200k_base",
            sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
            pat_str=_O200K_PAT,
            special_tokens=MappingProxyType({ENDOFTEXT: 199999, ENDOFPROMPT: 200018}),
        ),
        "cl100k_base": EncodingSpec(
            name="cl100k_base",
            sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
            pat_str=_CL100K_PAT,
            special_tokens=MappingProxyType(
                {
                    ENDOFTEXT: 100257,
                    FIM_PREFIX: 100258,
                    FIM_MIDDLE: 100259,
                    FIM_SUFFIX: 100260,
                    ENDOFPROMPT: 100276,
                }
            ),
        ),
    }
)


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and whether it is exact ("tiktoken") or an estimate."""

    tokens: int
    source: TokenSource


class EncodingLoadError(Exception):
    """A rank file is missing, unreadable or not the official one."""


def load_encoding(path: Path, spec: EncodingSpec) -> tiktoken.Encoding:
    """Build ``spec``'s encoding from the rank file at ``path``, checking its sha256."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise EncodingLoadError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise EncodingLoadError(f"{path}: sha256 {digest} is not the official {spec.sha256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    encoding = tiktoken.Encoding(
        spec.name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )
    # The encoder's native core keeps its own copy of the ranks; the Python dict
    # (27 MiB for o200k_base) only serves pickling, which a counter never does.
    encoding._mergeable_ranks = {}
    return encoding


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc only; elsewhere nothing).

    Building an encoding parses a few hundred thousand small objects and then
    frees them; without this their pages stay in the process's resident set.
    """
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def rank_file(directory: Path, name: str) -> Path:
    """``<name>.tiktoken`` in ``directory``, else its gzipped form when only that exists."""
    plain = directory / f"{name}.tiktoken"
    gzipped = directory / f"{name}.tiktoken.gz"
    return gzipped if not plain.exists() and gzipped.exists() else plain


def estimate_text_tokens(text: str) -> int:
    """The fallback estimate: ceil(utf8_bytes / 4)."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_ESTIMATED_TOKEN)


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class TokenCounter:
    """Counts prompt tokens per encoding; thread-safe, no file I/O per call."""

    def __init__(self, tiktoken_dir: Path | None) -> None:
        self._dir = tiktoken_dir
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()
        self._requested: set[str] = set()

    def warm(self, encodings: Iterable[str] | None = None) -> Mapping[str, str]:
        """Load the named encodings (default: every known one) not yet loaded.

        Returns name -> "loaded" or the reason not. Safe to call from a thread
        while other threads count: until an encoding is published here, counts
        for it are estimates. Each loaded encoding holds tens of MiB, so a
        server loads only those its models use.
        """
        wanted = set(ENCODINGS if encodings is None else encodings)
        with self._lock:
            self._requested.update(wanted)
            for name, spec in ENCODINGS.items():
                if name in self._encodings or name not in wanted:
                    continue
                if self._dir is None:
                    self._failures[name] = "no tiktoken directory configured"
                    continue
                try:
                    encoding = load_encoding(rank_file(self._dir, name), spec)
                except (EncodingLoadError, ValueError) as exc:
                    self._failures[name] = str(exc)
                    logger.warning("token counts for %s will be estimated: %s", name, exc)
                    continue
                self._failures.pop(name, None)
                self._encodings[name] = encoding
            release_free_memory()
            return self.status()

    def _load_later(self, encoding: str) -> None:
        """Start loading an encoding in the background the first time it is wanted.

        The request that wanted it is not held up: it gets an estimate.
        """
        if self._dir is None or encoding not in ENCODINGS or encoding in self._requested:
            return
        with self._lock:
            if encoding in self._requested:
                return
            self._requested.add(encoding)
        threading.Thread(
            target=self.warm, args=((encoding,),), name=f"tiktoken-{encoding}", daemon=True
        ).start()

    def status(self) -> Mapping[str, str]:
        """Per encoding: "loaded", the reason it could not be, or "not loaded"."""
        return {
            name: "loaded" if name in self._encodings else self._failures.get(name, "not loaded")
            for name in ENCODINGS
        }

    def _counter(self, encoding: str) -> tuple[Callable[[str], int], TokenSource]:
        loaded = self._encodings.get(encoding)
        if loaded is None:
            self._load_later(encoding)
            return estimate_text_tokens, "estimated"
        return (lambda text: len(loaded.encode_ordinary(text))), "tiktoken"

    def count_text(self, text: str, *, encoding: str) -> TokenCount:
        """Tokens in a bare string (no chat framing)."""
        count, source = self._counter(encoding)
        return TokenCount(count(text), source)

    def count_messages(self, messages: Sequence[Mapping[str, Any]], *, encoding: str) -> TokenCount:
        """Prompt tokens of chat ``messages`` in OpenAI's chat format (see module doc)."""
        count, source = self._counter(encoding)
        total = REPLY_PRIMING_TOKENS
        for message in messages:
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                total += _field_tokens(key, value, count)
        return TokenCount(total, source)

    def count_tools(
        self, tools: Sequence[Mapping[str, Any]] | None, *, encoding: str
    ) -> TokenCount:
        """Prompt tokens added by offering ``tools`` (0 when none are offered)."""
        count, source = self._counter(encoding)
        return TokenCount(count(_compact_json(list(tools))) if tools else 0, source)


def _field_tokens(key: str, value: object, count: Callable[[str], int]) -> int:
    if value is None:
        return 0
    if key == "content":
        return _content_tokens(value, count)
    if key == "tool_calls" and isinstance(value, list):
        return sum(count(_compact_json(call)) for call in value)
    if key == "name":
        return count(str(value)) + TOKENS_PER_NAME
    if isinstance(value, str):
        return count(value)
    return count(_compact_json(value))


def _content_tokens(content: object, count: Callable[[str], int]) -> int:
    if isinstance(content, str):
        return count(content)
    if not isinstance(content, list):
        return count(_compact_json(content))
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            total += count(str(part.get("text", "")))
        elif kind == "image_url":
            image = part.get("image_url")
            low = isinstance(image, dict) and image.get("detail") == "low"
            total += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS
        else:
            total += count(_compact_json(part))
    return total
