"""ResponseCache: lookups, stores, isolation between namespaces, encryption."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest

from cache.crypto import AesGcmEncryptor, encryptor_from_secret
from cache.memory import MemoryStore
from cache.service import CachedAnswer, ResponseCache
from proxy.errors import ConfigError

pytestmark = pytest.mark.anyio

BODY: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "2+2?"}]}


def answer(content: str = "4", finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def cache(**kwargs: Any) -> ResponseCache:
    store = kwargs.pop("store", None) or MemoryStore(1_000_000)
    return ResponseCache(store, ttl_s=60, **kwargs)


async def test_store_then_lookup_hits_exactly() -> None:
    c = cache()
    assert await c.lookup(BODY, namespace="t1", model="gpt-4o") is None
    assert await c.store(BODY, answer(), namespace="t1", model="gpt-4o")
    hit = await c.lookup(
        {**BODY, "user": "someone-else", "stream": True}, namespace="t1", model="gpt-4o"
    )
    # The stored JSON comes back too, so a hit is sent without serialising it again.
    stored = json.dumps(answer(), separators=(",", ":"), ensure_ascii=False).encode()
    assert hit == CachedAnswer(completion=answer(), kind="exact", similarity=None, body=stored)
    assert c.counters.lookups == 2
    assert c.counters.hits_exact == 1
    assert c.counters.misses == 1
    assert c.metrics()["cache_stores"] == 1


async def test_a_different_request_misses() -> None:
    c = cache()
    await c.store(BODY, answer(), namespace="t1", model="gpt-4o")
    assert await c.lookup({**BODY, "temperature": 0}, namespace="t1", model="gpt-4o") is None
    assert await c.lookup(BODY, namespace="t1", model="gpt-4o-mini") is None


async def test_namespaces_are_isolated_and_a_shared_namespace_is_shared() -> None:
    c = cache()
    await c.store(BODY, answer("from tenant a"), namespace="tenant-a", model="gpt-4o")
    assert await c.lookup(BODY, namespace="tenant-b", model="gpt-4o") is None
    await c.store(BODY, answer("shared"), namespace="shared:acme", model="gpt-4o")
    hit = await c.lookup(BODY, namespace="shared:acme", model="gpt-4o")
    assert hit is not None and hit.completion["choices"][0]["message"]["content"] == "shared"
    own = await c.lookup(BODY, namespace="tenant-a", model="gpt-4o")
    assert own is not None and own.completion["choices"][0]["message"]["content"] == "from tenant a"


@pytest.mark.parametrize("finish", ["length", "content_filter"])
async def test_policy_refuses_incomplete_answers(finish: str) -> None:
    c = cache()
    assert not await c.store(BODY, answer(finish=finish), namespace="t", model="gpt-4o")
    assert await c.lookup(BODY, namespace="t", model="gpt-4o") is None
    assert c.counters.store_skipped == 1


async def test_length_answers_are_stored_when_configured() -> None:
    c = cache(cache_length=True)
    assert await c.store(BODY, answer(finish="length"), namespace="t", model="gpt-4o")


async def test_n_greater_than_one_needs_all_choices() -> None:
    c = cache()
    body = {**BODY, "n": 2}
    assert not await c.store(body, answer(), namespace="t", model="gpt-4o")
    two = answer()
    two["choices"].append({**two["choices"][0], "index": 1})
    assert await c.store(body, two, namespace="t", model="gpt-4o")


async def test_an_entry_whose_digest_does_not_match_its_key_is_not_served() -> None:
    store = MemoryStore(1_000_000)
    c = cache(store=store)
    other = {**BODY, "messages": [{"role": "user", "content": "3+3?"}]}
    await c.store(other, answer("6"), namespace="t", model="gpt-4o")
    other_key = c.key(other, namespace="t", model="gpt-4o")
    raw = await store.get(other_key)
    assert raw is not None
    # Planting the other request's entry under this request's key must not serve it.
    await store.set(c.key(BODY, namespace="t", model="gpt-4o"), raw)
    assert await c.lookup(BODY, namespace="t", model="gpt-4o") is None
    assert c.counters.unreadable == 1


async def test_garbage_values_read_as_misses() -> None:
    store = MemoryStore(1_000_000)
    c = cache(store=store)
    key = c.key(BODY, namespace="t", model="gpt-4o")
    for junk in (b"", b"not an entry", b"sgc1\n" + b"0" * 64 + b"\n{", b"sgc1\nshort"):
        await store.set(key, junk)
        assert await c.lookup(BODY, namespace="t", model="gpt-4o", key=key) is None


async def test_stored_bytes_do_not_contain_the_prompt_key() -> None:
    store = MemoryStore(1_000_000)
    c = cache(store=store)
    await c.store(BODY, answer(), namespace="t", model="gpt-4o")
    key = c.key(BODY, namespace="t", model="gpt-4o")
    assert "2+2" not in key


def secret() -> str:
    return base64.b64encode(bytes(range(32))).decode()


async def test_encrypted_entries_round_trip_and_hide_the_answer() -> None:
    store = MemoryStore(1_000_000)
    c = cache(store=store, encryptor=encryptor_from_secret(secret()))
    await c.store(BODY, answer("a secret answer"), namespace="t", model="gpt-4o")
    raw = await store.get(c.key(BODY, namespace="t", model="gpt-4o"))
    assert raw is not None and b"secret answer" not in raw and not raw.startswith(b"sgc1")
    hit = await c.lookup(BODY, namespace="t", model="gpt-4o")
    assert hit is not None and hit.completion == answer("a secret answer")


async def test_wrong_key_or_plaintext_reads_as_a_miss() -> None:
    store = MemoryStore(1_000_000)
    await cache(store=store, encryptor=AesGcmEncryptor(b"k" * 32)).store(
        BODY, answer(), namespace="t", model="gpt-4o"
    )
    wrong = cache(store=store, encryptor=AesGcmEncryptor(b"w" * 32))
    assert await wrong.lookup(BODY, namespace="t", model="gpt-4o") is None
    plain_store = MemoryStore(1_000_000)
    await cache(store=plain_store).store(BODY, answer(), namespace="t", model="gpt-4o")
    encrypted = cache(store=plain_store, encryptor=AesGcmEncryptor(b"k" * 32))
    assert await encrypted.lookup(BODY, namespace="t", model="gpt-4o") is None


def test_ciphertext_is_bound_to_its_cache_key() -> None:
    enc = AesGcmEncryptor(b"k" * 32)
    sealed = enc.encrypt(b"payload", associated=b"ex:one")
    assert enc.decrypt(sealed, associated=b"ex:one") == b"payload"
    assert enc.decrypt(sealed, associated=b"ex:two") is None
    assert enc.decrypt(sealed[:5], associated=b"ex:one") is None


@pytest.mark.parametrize("bad", ["!!!not base64!!!", base64.b64encode(b"short").decode()])
def test_bad_encryption_keys_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        encryptor_from_secret(bad)


def test_unset_encryption_key_means_no_encryption() -> None:
    assert encryptor_from_secret(None) is None
    assert encryptor_from_secret("  ") is None


def test_missing_cryptography_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ConfigError, match="cryptography"):
        AesGcmEncryptor(b"k" * 32)
