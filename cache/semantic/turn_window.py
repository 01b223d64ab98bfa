"""Long turns: what of a turn is compared, and when two long turns may match at all.

Embedding cost grows with the text, so the cache embeds, guards and reranks
only a window of each turn: its first ``WINDOW_HEAD`` and last
``WINDOW_TAIL`` characters. A window alone would let two long turns that
differ only in the middle (the same instructions and question around a
different document) look identical. So before anything else, two turns must
differ only inside their windows: everything between the head and the tail
must be part of the text both turns share verbatim at their start or end.
A paraphrased question at the end of a long, identical document can hit; a
changed word in the middle never does.
"""

from __future__ import annotations

from typing import Final

WINDOW_HEAD: Final = 600
WINDOW_TAIL: Final = 400


def compared_part(text: str, *, head: int = WINDOW_HEAD, tail: int = WINDOW_TAIL) -> str:
    """The part of a turn that is embedded, guarded and reranked: its head and tail.

    The same cut as ``routing.embedding.window``, written out here so that
    the cache does not import the embedding model's libraries (numpy,
    tokenizers) when it embeds with ``hash`` or a provider.
    """
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[len(text) - tail :]


def differ_only_in_windows(
    a: str, b: str, *, head: int = WINDOW_HEAD, tail: int = WINDOW_TAIL
) -> bool:
    """Whether every difference between ``a`` and ``b`` lies inside both turns' windows.

    The texts are ``shared prefix + a's part + shared suffix`` and
    ``shared prefix + b's part + shared suffix``; each part must fall within
    its own turn's first ``head`` or last ``tail`` characters. Turns no longer
    than ``head + tail`` are whole windows and always qualify.
    """
    if len(a) <= head + tail and len(b) <= head + tail:
        return True
    prefix = common_prefix_length(a, b)
    suffix = common_suffix_length(a[prefix:], b[prefix:])
    return all(
        _inside_window(prefix, len(text) - suffix, len(text), head=head, tail=tail)
        for text in (a, b)
    )


def _inside_window(start: int, end: int, length: int, *, head: int, tail: int) -> bool:
    if start >= end or length <= head + tail:
        return True
    return end <= head or start >= length - tail


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search over C-level slice compares)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def common_suffix_length(a: str, b: str) -> int:
    """Length of the longest common suffix."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low
