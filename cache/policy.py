"""What may be looked up and what may be stored.

Request controls, strongest first:

* tenant setting ``cache.enabled = false``: no lookup, no store.
* ``x-spendgate-cache: off``: no lookup, no store.
* ``x-spendgate-cache: refresh``: skip the lookup, store the fresh answer.
* ``Cache-Control: no-store`` (RFC 9111 section 5.2.1.5): the answer is not
  stored. The directive forbids storing, not reusing, so a lookup still
  happens.
* ``Cache-Control: no-cache`` or ``max-age=0`` (RFC 9111 sections 5.2.1.4 and
  5.2.1.1): a stored answer may not be used without revalidation, which a
  model answer cannot have, so these behave like ``refresh``.

Other header values are ignored. Controls combine: each can only turn a
lookup or a store off.

Only successful, complete answers are stored: a ``chat.completion`` whose
every choice finished with ``stop``, ``tool_calls`` or ``function_call``
(``length`` only when configured); never ``content_filter``, never errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

CACHE_HEADER: Final = "x-spendgate-cache"

_COMPLETE_REASONS: Final = frozenset({"stop", "tool_calls", "function_call"})


@dataclass(frozen=True, slots=True)
class CacheMode:
    """Whether this request may read from and write to the cache."""

    lookup: bool
    store: bool


DEFAULT_MODE: Final = CacheMode(lookup=True, store=True)
NO_CACHE: Final = CacheMode(lookup=False, store=False)


def cache_mode(headers: Mapping[str, str], *, enabled: bool) -> CacheMode:
    """The cache mode from request headers (any key case) and the tenant switch."""
    if not enabled:
        return NO_CACHE
    lookup, store = True, True
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == CACHE_HEADER:
            control = value.strip().lower()
            if control == "off":
                return NO_CACHE
            if control == "refresh":
                lookup = False
        elif lowered == "cache-control":
            directives = _directives(value)
            if "no-store" in directives:
                store = False
            if "no-cache" in directives or "max-age=0" in directives:
                lookup = False
    return CacheMode(lookup=lookup, store=store)


def is_cacheable(
    completion: Mapping[str, Any],
    *,
    cache_length: bool = False,
    expected_choices: int | None = None,
) -> bool:
    """Whether ``completion`` is a successful, complete answer worth storing.

    ``expected_choices`` is the request's ``n``: an answer with fewer choices
    than asked for is incomplete.
    """
    if completion.get("object") != "chat.completion" or "error" in completion:
        return False
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    if expected_choices is not None and len(choices) != expected_choices:
        return False
    allowed = _COMPLETE_REASONS | {"length"} if cache_length else _COMPLETE_REASONS
    indices = set()
    for choice in choices:
        if not isinstance(choice, Mapping) or not isinstance(choice.get("message"), Mapping):
            return False
        if choice.get("finish_reason") not in allowed:
            return False
        indices.add(choice.get("index"))
    return indices == set(range(len(choices)))


def _directives(value: str) -> set[str]:
    return {part.strip().lower().replace(" ", "") for part in value.split(",") if part.strip()}
