"""Cache keys: hashes of the canonical form of everything that can change an answer.

A key is ``<kind>:<sha256 hex>`` over a compact, key-sorted JSON document that
holds the namespace, the resolved model and every request field except the
ones listed in :data:`ANSWER_NEUTRAL_FIELDS`. Hashing keeps prompts out of
Redis key names; covering the whole request plus the namespace means a client
can only ever write the entry for its own request in its own namespace.

Decisions:

* Only fields that are present take part: an omitted ``temperature`` is not the
  same request as ``temperature: 0`` (the provider default may differ from
  what a client assumes), and an explicit ``null`` is distinct from omission.
* Unknown fields are kept: a field we do not recognise may change the answer.
* ``model`` from the body is replaced by the ``model`` argument (the resolved
  model name), so two aliases of one model share entries.
* ``service_tier`` is left out: it selects latency and price, not content.
* ``prompt_cache_key`` and ``safety_identifier`` are left out: the first is a
  provider-side caching hint, the second an abuse-tracking tag like ``user``.
* Top-level sampling numbers are normalised so ``1`` and ``1.0`` agree; nested
  numbers (inside tool schemas, messages) are hashed as sent, which can only
  cost a hit, never serve a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any, Final

KEY_VERSION: Final = 1
EXACT_PREFIX: Final = "ex:"
SEMANTIC_CONTEXT_PREFIX: Final = "sc:"

ANSWER_NEUTRAL_FIELDS: Final = frozenset(
    {
        "user",
        "stream",
        "stream_options",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "model",
    }
)

_NUMERIC_FIELDS: Final = frozenset(
    {"temperature", "top_p", "presence_penalty", "frequency_penalty"}
)


def exact_key(
    body: Mapping[str, Any],
    *,
    namespace: str,
    model: str,
    exclude: Collection[str] = (),
) -> str:
    """Key of the exact cache entry for ``body`` in ``namespace`` on ``model``.

    ``exclude`` names extra fields the proxy reads only for itself.
    """
    return EXACT_PREFIX + digest(
        canonical_request(body, namespace=namespace, model=model, exclude=exclude)
    )


def key_digest(key: str) -> str:
    """The sha256 hex digest inside a key made by this module."""
    return key.rpartition(":")[2]


def canonical_request(
    body: Mapping[str, Any],
    *,
    namespace: str,
    model: str,
    exclude: Collection[str] = (),
) -> bytes:
    """Canonical UTF-8 JSON of what can change the answer to ``body``."""
    fields = {
        name: _normalise(name, value)
        for name, value in body.items()
        if name not in ANSWER_NEUTRAL_FIELDS and name not in exclude
    }
    document = {"v": KEY_VERSION, "ns": namespace, "model": model, "body": fields}
    return _dumps(document)


def digest(canonical: bytes) -> str:
    """sha256 hex of canonical bytes."""
    return hashlib.sha256(canonical).hexdigest()


def last_user_text(body: Mapping[str, Any]) -> str | None:
    """Text of the last message when it is a user turn, else None.

    String content is returned as is; a content list yields its text parts
    concatenated with no separator. A user turn without text gives None.
    """
    message = _last_message(body)
    if message is None or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = [
        part["text"]
        for part in content
        if isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    ]
    return "".join(texts) if texts else None


def semantic_context_key(
    body: Mapping[str, Any],
    *,
    namespace: str,
    model: str,
    exclude: Collection[str] = (),
) -> str | None:
    """Key of everything that can change the answer except the last user turn's text.

    The last message stays in the hash with its text blanked, so its role, name
    and any non-text parts (images, audio) must still match exactly. None when
    the last message is not a user turn with text content.
    """
    if last_user_text(body) is None:
        return None
    messages = body["messages"]
    stripped = dict(body)
    stripped["messages"] = [*messages[:-1], _without_text(messages[-1])]
    canonical = canonical_request(stripped, namespace=namespace, model=model, exclude=exclude)
    return SEMANTIC_CONTEXT_PREFIX + digest(b"semantic-context\x00" + canonical)


def _last_message(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    return last if isinstance(last, Mapping) else None


def _without_text(message: Mapping[str, Any]) -> dict[str, Any]:
    blanked = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        blanked["content"] = ""
    elif isinstance(content, list):
        blanked["content"] = [
            {k: v for k, v in part.items() if k != "text"}
            if isinstance(part, Mapping) and part.get("type") == "text"
            else part
            for part in content
        ]
    return blanked


def _normalise(name: str, value: Any) -> Any:
    if name in _NUMERIC_FIELDS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
