"""Config discovery, ${VAR} substitution, and problems reported with their paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.errors import ConfigError
from proxy.settings import find_config, load_settings, substitute_env

EXAMPLE = """
providers:
  openai:    {type: openai, base_url: https://api.openai.com/v1, api_key: "${OPENAI_API_KEY}"}
  anthropic: {type: anthropic, base_url: https://api.anthropic.com, api_key: "${ANTHROPIC_API_KEY}"}
  local:     {type: openai, base_url: http://127.0.0.1:8000/v1}
models:
  - {name: gpt-4o, provider: openai, tier: large}
  - {name: gpt-4o-mini, provider: openai, tier: small}
  - {name: claude-sonnet, provider: anthropic, upstream: claude-sonnet-4-5, tier: large,
     price: {input: 3.00, output: 15.00, cached_input: 0.30}}
routing: {mode: downgrade, baseline_model: gpt-4o}
cache:   {backend: memory, redis_url: "redis://127.0.0.1:6379/0", ttl_s: 86400, semantic: {enabled: false}}
ledger:  {url: "sqlite:///spendgate.db", fee_rate: 0.10}
auth:
  admin_key: "${SPENDGATE_ADMIN_KEY}"
  keys:
    - {key: "${TEAM_A_KEY}", tenant: team-a}
    - {key_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", tenant: team-b}
"""


def test_example_config_loads_with_its_variables(tmp_path: Path) -> None:
    path = tmp_path / "spendgate.yaml"
    path.write_text(EXAMPLE)
    env = {"OPENAI_API_KEY": "sk-1", "TEAM_A_KEY": "team-a-secret", "SPENDGATE_ADMIN_KEY": "adm"}
    settings = load_settings(str(path), env=env)
    config = settings.config
    assert config.providers["openai"].api_key == "sk-1"
    assert config.providers["anthropic"].api_key is None  # unset variable -> no key
    assert config.models[2].upstream_name == "claude-sonnet-4-5"
    assert str(config.models[2].price.cached_input) == "0.3"  # type: ignore[union-attr]
    assert config.routing.mode == "downgrade" and config.auth is not None
    assert config.auth.keys[0].key == "team-a-secret"


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "providers:\n  openai: {type: openai, base_url: https://x}\n"
        "models:\n  - {name: a, provider: openai}\n  - {name: b, provider: openai, tier: huge}\n"
        "  - {name: c, provider: opnai}\nrouting: {mdoe: auto-only, baseline_model: zzz}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), env={})
    problems = info.value.problems
    assert "models[2].provider: unknown provider 'opnai'" in problems
    assert "routing.mdoe: unknown key" in problems
    assert "routing.baseline_model: unknown model 'zzz'" in problems
    assert any(p.startswith("models[1].tier:") for p in problems)


def test_unset_key_variable_is_a_problem_not_an_empty_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('auth:\n  keys:\n    - {key: "${NOT_SET}", tenant: t}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), env={})
    assert info.value.problems == [
        "auth.keys[0]: give exactly one of key or key_sha256 (is its variable set?)"
    ]


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config(None, {}) is None
    (tmp_path / "spendgate.yaml").write_text("{}")
    assert find_config(None, {}) == Path("spendgate.yaml")
    assert find_config(None, {"SPENDGATE_CONFIG": "/etc/x.yaml"}) == Path("/etc/x.yaml")
    assert find_config("given.yaml", {"SPENDGATE_CONFIG": "/etc/x.yaml"}) == Path("given.yaml")


def test_environment_only_defaults_name_missing_providers() -> None:
    settings = load_settings(
        env={"OPENAI_API_KEY": "sk-x"}, list_models=lambda p: [(f"{p}-m", "small")]
    )
    assert list(settings.config.providers) == ["openai"]
    assert [m.name for m in settings.config.models] == ["openai-m"]
    assert settings.missing_providers == ("anthropic (set ANTHROPIC_API_KEY)",)


def test_substitution_leaves_text_around_variables() -> None:
    assert substitute_env("a ${X} b ${Y}", {"X": "1"}) == "a 1 b "


def test_check_config_command_exits_1_and_prints_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - {name: a, provider: opnai}\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "models[0].provider: unknown provider 'opnai'" in result.stderr


def test_serve_with_a_bad_config_fails_before_binding(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - {name: a, provider: opnai}\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "unknown provider 'opnai'" in result.stderr


def test_serve_refuses_a_public_bind_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "open.yaml"
    path.write_text("{}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy.cli",
            "serve",
            "--config",
            str(path),
            "--host",
            "0.0.0.0",
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "--insecure" in result.stderr


def test_tenant_and_key_overrides_may_be_spelled_like_the_sections() -> None:
    from proxy.settings import parse_config

    base = {
        "providers": {"o": {"type": "openai", "base_url": "http://127.0.0.1:1/v1"}},
        "models": [{"name": "m", "provider": "o", "tier": "small"}],
    }
    nested = parse_config(
        {
            **base,
            "tenants": {
                "a": {
                    "cache": {
                        "enabled": False,
                        "namespace": "shared",
                        "semantic": {"threshold": 0.95},
                    },
                    "routing": {"mode": "downgrade", "baseline_model": "m"},
                }
            },
            "auth": {"keys": [{"key": "k", "tenant": "a", "routing": {"mode": "off"}}]},
        },
        known_provider_types=("openai",),
    )
    flat = parse_config(
        {
            **base,
            "tenants": {
                "a": {
                    "cache_enabled": False,
                    "cache_namespace": "shared",
                    "semantic_threshold": 0.95,
                    "routing_mode": "downgrade",
                    "baseline_model": "m",
                }
            },
            "auth": {"keys": [{"key": "k", "tenant": "a", "routing_mode": "off"}]},
        },
        known_provider_types=("openai",),
    )
    assert nested == flat
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"tenants": {"a": {"cache": {"enabld": False}}}}, known_provider_types=("openai",)
        )
    assert info.value.problems == ["tenants.a.cache.enabld: unknown key"]


def test_trusted_forwarding_peers_must_be_addresses_or_networks(tmp_path: Path) -> None:
    path = tmp_path / "fwd.yaml"
    path.write_text("server: {forwarded_allow_ips: ['10.0.0.0/8', '::1', 'proxy.internal']}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), env={})
    assert any(
        p.startswith("server.forwarded_allow_ips") and "'proxy.internal'" in p
        for p in info.value.problems
    ), info.value.problems
    path.write_text("server: {forwarded_allow_ips: ['10.0.0.0/8', '::1']}\n")
    assert load_settings(str(path), env={}).config.server.forwarded_allow_ips == (
        "10.0.0.0/8",
        "::1",
    )
