"""MemoryStore: an LRU bounded in bytes, with TTLs and locks."""

from __future__ import annotations

import pytest

from cache.memory import MemoryStore
from cache.store import CacheStore

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_satisfies_the_protocol() -> None:
    assert isinstance(MemoryStore(100), CacheStore)


async def test_size_counts_key_and_value_bytes() -> None:
    store = MemoryStore(1000)
    assert await store.set("ké", b"12345")
    assert store.size_bytes == len("ké".encode()) + 5


async def test_least_recently_used_entries_are_evicted_to_fit() -> None:
    store = MemoryStore(30)  # each entry below is 1 + 9 = 10 bytes
    for name in "abc":
        assert await store.set(name, b"x" * 9)
    assert await store.get("a") == b"x" * 9  # a is now more recent than b
    assert await store.set("d", b"y" * 9)
    assert await store.get("b") is None
    assert await store.get("a") is not None
    assert await store.get("c") is not None
    assert await store.get("d") == b"y" * 9
    assert store.size_bytes == 30
    assert store.stats.evictions == 1


async def test_a_large_value_evicts_as_many_entries_as_needed() -> None:
    store = MemoryStore(30)
    for name in "abc":
        await store.set(name, b"x" * 9)
    assert await store.set("big", b"z" * 24)  # 27 bytes: only room after evicting all three
    assert store.entry_count == 1
    assert store.size_bytes == 27


async def test_value_larger_than_the_bound_is_refused() -> None:
    store = MemoryStore(10)
    await store.set("a", b"12")
    assert not await store.set("k", b"x" * 10)
    assert await store.get("a") == b"12"


async def test_overwrite_replaces_size_accounting() -> None:
    store = MemoryStore(100)
    await store.set("k", b"x" * 50)
    await store.set("k", b"x" * 10)
    assert store.size_bytes == 11
    assert store.entry_count == 1


async def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(100, clock=clock)
    await store.set("short", b"1", 5)
    await store.set("forever", b"2")
    clock.now += 4.9
    assert await store.get("short") == b"1"
    clock.now += 0.2
    assert await store.get("short") is None
    assert await store.get("forever") == b"2"
    assert store.size_bytes == len("forever") + 1


async def test_default_ttl_applies_when_none_given() -> None:
    clock = FakeClock()
    store = MemoryStore(100, ttl_s=10, clock=clock)
    await store.set("k", b"v")
    clock.now += 10
    assert await store.get("k") is None


async def test_expired_entries_at_the_lru_end_are_not_counted_as_evictions() -> None:
    clock = FakeClock()
    store = MemoryStore(20, clock=clock)
    await store.set("a", b"x" * 9, 1)
    clock.now += 2
    await store.set("b", b"x" * 9)
    await store.set("c", b"x" * 9)
    assert store.stats.evictions == 0
    assert await store.get("c") is not None


async def test_delete_removes_entry() -> None:
    store = MemoryStore(100)
    await store.set("k", b"v")
    await store.delete("k")
    assert await store.get("k") is None
    assert store.size_bytes == 0


async def test_locks_are_exclusive_owned_and_expire() -> None:
    clock = FakeClock()
    store = MemoryStore(100, clock=clock)
    assert await store.acquire_lock("k", "one", 5) is True
    assert await store.acquire_lock("k", "two", 5) is False
    assert await store.lock_held("k")
    await store.release_lock("k", "two")  # not the holder: no effect
    assert await store.lock_held("k")
    assert await store.extend_lock("k", "one", 5)
    assert not await store.extend_lock("k", "two", 5)
    clock.now += 5
    assert not await store.lock_held("k")
    assert await store.acquire_lock("k", "two", 5) is True
    await store.release_lock("k", "two")
    assert not await store.lock_held("k")
