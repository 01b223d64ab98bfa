"""Every Redis key of a deployment lives under one configurable prefix."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.config import CacheConfig
from proxy.errors import ConfigError
from proxy.pipeline.redis_keys import redis_keys
from proxy.settings import parse_config


def kinds(cache: dict[str, Any]) -> dict[str, str]:
    keys = redis_keys(CacheConfig.model_validate(cache))
    return {
        "cache": keys.cache,
        "semantic": keys.semantic,
        "sticky": keys.sticky,
        "breakers": keys.breakers,
        "budgets": keys.budgets,
        "rate_limits": keys.rate_limits,
        "login": keys.login,
    }


def test_the_defaults_are_the_keys_earlier_versions_used() -> None:
    assert kinds({}) == {
        "cache": "spendgate:cache:",
        "semantic": "spendgate:cache:sem:",
        "sticky": "spendgate:sticky:",
        "breakers": "spendgate:breaker:",
        "budgets": "spendgate:{budgets}:",
        "rate_limits": "spendgate:ratelimit:",
        "login": "spendgate:login:",
    }


def test_redis_prefix_moves_every_kind_of_key() -> None:
    layout = kinds({"redis_prefix": "eu-1:"})
    assert layout["cache"] == "eu-1:cache:"
    assert layout["budgets"] == "eu-1:{budgets}:"
    assert all(prefix.startswith("eu-1:") for prefix in layout.values()), layout


def test_a_cache_prefix_alone_takes_every_key_with_it() -> None:
    layout = kinds({"prefix": "team-b:"})
    assert layout["cache"] == "team-b:"
    assert layout["sticky"] == "team-b:sticky:"
    assert layout["breakers"] == "team-b:breaker:"
    assert all(prefix.startswith("team-b:") for prefix in layout.values()), layout


def test_both_set_keep_the_cache_where_it_was_named() -> None:
    layout = kinds({"redis_prefix": "eu-1:", "prefix": "eu-1:responses:"})
    assert layout["cache"] == "eu-1:responses:"
    assert layout["login"] == "eu-1:login:"


def test_two_deployments_never_share_a_prefix_of_any_kind() -> None:
    one, two = kinds({"redis_prefix": "a:"}), kinds({"redis_prefix": "b:"})
    for kind in one:
        assert not one[kind].startswith(two[kind]) and not two[kind].startswith(one[kind])


def test_a_cache_prefix_outside_the_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"cache": {"redis_prefix": "eu-1:", "prefix": "spendgate:cache:"}},
            known_provider_types=("openai",),
        )
    [problem] = info.value.problems
    assert problem.startswith("cache: ")
    assert "must start with redis_prefix 'eu-1:'" in problem
