"""Where the proxy keeps each kind of state in Redis: all of it under one prefix.

Two deployments that share a Redis must not read or overwrite each other's
cache entries, budget counters, circuit states, stickiness, rate limits or
login throttles, so every key starts with one root:

* ``cache.redis_prefix`` (default ``spendgate:``) is the root; cache entries,
  their coalescing locks and the semantic index live under ``<root>cache:``
  unless ``cache.prefix`` names another place under the root;
* a config that sets only ``cache.prefix`` (as older configs did to keep
  deployments apart) gets every key under that prefix.

With neither set, the keys are the ones earlier versions used
(``spendgate:cache:``, ``spendgate:{budgets}:``, ``spendgate:breaker:``, ...),
so counters and circuit states survive an upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config import CacheConfig

DEFAULT_ROOT = "spendgate:"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The prefix of each kind of key; every one starts with ``root``."""

    root: str
    cache: str

    @property
    def semantic(self) -> str:
        return self.cache + "sem:"

    @property
    def sticky(self) -> str:
        return self.root + "sticky:"

    @property
    def breakers(self) -> str:
        return self.root + "breaker:"

    @property
    def budgets(self) -> str:
        # One hash tag for every counter: the reservation script spans them (Redis Cluster).
        return self.root + "{budgets}:"

    @property
    def rate_limits(self) -> str:
        return self.root + "ratelimit:"

    @property
    def login(self) -> str:
        return self.root + "login:"


def redis_keys(cache: CacheConfig) -> RedisKeys:
    """The key layout for a ``cache`` section (see the module docstring)."""
    chosen = cache.model_fields_set
    if "redis_prefix" in chosen:
        root = cache.redis_prefix
        return RedisKeys(root, cache.prefix if "prefix" in chosen else root + "cache:")
    if "prefix" in chosen:
        return RedisKeys(cache.prefix, cache.prefix)
    return RedisKeys(DEFAULT_ROOT, DEFAULT_ROOT + "cache:")
