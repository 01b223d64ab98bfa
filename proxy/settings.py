"""Settings: the one module that reads the environment.

Every command finds its config the same way: ``--config FILE``, else
``$SPENDGATE_CONFIG``, else ``./spendgate.yaml`` if it exists, else defaults
built from the environment alone (each of ``OPENAI_API_KEY`` and
``ANTHROPIC_API_KEY`` that is set enables that provider).

``${VAR}`` in the YAML is replaced from the environment before parsing.
Problems are reported all at once, each with its path in the file, e.g.
``models[2].provider: unknown provider 'opnai'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from proxy.config import Config, ModelConfig, ProviderConfig
from proxy.errors import ConfigError

DEFAULT_CONFIG_NAME = "spendgate.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

ENV_PROVIDERS: dict[str, tuple[str, str, str]] = {
    # provider name: (type, base URL, environment variable holding the key)
    "openai": ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": ("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
}

# Models given to a provider enabled by its environment key alone, with tiers.
ModelLister = Callable[[str], Iterable[tuple[str, str | None]]]


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated config plus the few environment facts the process needs."""

    config: Config
    source: str  # the file it came from, or "environment"
    tiktoken_dir: Path | None = None
    metrics_dir: Path | None = None
    missing_providers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def model(self, name: str) -> ModelConfig | None:
        for model in self.config.models:
            if model.name == name:
                return model
        return None


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Replace each ``${VAR}`` with its value ('' when unset)."""
    return _VAR.sub(lambda m: env.get(m.group(1), ""), text)


def find_config(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to use, by the documented search order."""
    if explicit:
        return Path(explicit)
    if env.get("SPENDGATE_CONFIG"):
        return Path(env["SPENDGATE_CONFIG"])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_settings(
    explicit: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    known_provider_types: Iterable[str] = ("openai", "anthropic"),
    list_models: ModelLister | None = None,
) -> Settings:
    """Load and validate the settings; raises ``ConfigError`` listing every problem."""
    env = os.environ if env is None else env
    tiktoken_dir = _path(env, "SPENDGATE_TIKTOKEN_DIR")
    metrics_dir = _path(env, "PROMETHEUS_MULTIPROC_DIR")
    path = find_config(explicit, env)
    if path is None:
        config, missing = _from_environment(env, list_models)
        return Settings(config, "environment", tiktoken_dir, metrics_dir, missing)
    config = parse_config_file(path, env=env, known_provider_types=known_provider_types)
    return Settings(config, str(path), tiktoken_dir, metrics_dir)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def parse_config_file(
    path: Path, *, env: Mapping[str, str], known_provider_types: Iterable[str]
) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file ({exc.strerror})"]) from exc
    try:
        data = yaml.safe_load(substitute_env(text, env))
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({_yaml_problem(exc)})"]) from exc
    return parse_config(data or {}, known_provider_types=known_provider_types)


def parse_config(data: Any, *, known_provider_types: Iterable[str]) -> Config:
    """Validate a parsed config document; every problem is reported at once."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping of sections"])
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_format_pydantic(err) for err in exc.errors())
    problems.extend(_cross_check(data, set(known_provider_types)))
    if problems or config is None:
        raise ConfigError(problems)
    return config


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"{problem} at line {mark.line + 1}" if mark is not None else str(problem)


def _format_pydantic(error: Mapping[str, Any]) -> str:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{path or '(top level)'}: {message}"


def _section(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    return value if isinstance(value, kind) else kind()


def _cross_check(data: Mapping[str, Any], provider_types: set[str]) -> Iterable[str]:
    """Checks across sections, on the raw document so they run even when fields fail."""
    providers = _section(data, "providers", dict)
    for name, provider in providers.items():
        ptype = provider.get("type") if isinstance(provider, dict) else None
        if isinstance(ptype, str) and ptype not in provider_types:
            known = ", ".join(sorted(provider_types))
            yield f"providers.{name}.type: unknown provider type {ptype!r} (known: {known})"
        base_url = provider.get("base_url") if isinstance(provider, dict) else None
        if isinstance(base_url, str) and not base_url.startswith(("http://", "https://")):
            yield f"providers.{name}.base_url: must start with http:// or https://"
    seen: set[str] = set()
    for i, model in enumerate(_section(data, "models", list)):
        if not isinstance(model, dict):
            continue
        provider_name, name = model.get("provider"), model.get("name")
        if isinstance(provider_name, str) and provider_name not in providers:
            yield f"models[{i}].provider: unknown provider {provider_name!r}"
        if name in seen:
            yield f"models[{i}].name: duplicate model {name!r}"
        if name == "auto":
            yield f"models[{i}].name: 'auto' is reserved for routing"
        if isinstance(name, str):
            seen.add(name)
    baselines = [("routing.baseline_model", _section(data, "routing", dict).get("baseline_model"))]
    for tenant, overrides in _section(data, "tenants", dict).items():
        if isinstance(overrides, dict):
            nested = overrides.get("routing")
            baseline = nested.get("baseline_model") if isinstance(nested, dict) else None
            baselines.append(
                (f"tenants.{tenant}.baseline_model", baseline or overrides.get("baseline_model"))
            )
    for where, baseline in baselines:
        if isinstance(baseline, str) and baseline not in seen:
            yield f"{where}: unknown model {baseline!r}"
    for i, key in enumerate(_section(_section(data, "auth", dict), "keys", list)):
        if not isinstance(key, dict):
            continue
        if bool(key.get("key")) == bool(key.get("key_sha256")):
            yield f"auth.keys[{i}]: give exactly one of key or key_sha256 (is its variable set?)"
        elif isinstance(key.get("key_sha256"), str) and not re.fullmatch(
            r"[0-9a-f]{64}", key["key_sha256"]
        ):
            yield f"auth.keys[{i}].key_sha256: must be 64 lower-case hex digits"
    for i, budget in enumerate(_section(data, "budgets", list)):
        if not isinstance(budget, dict):
            continue
        if not any(budget.get(k) for k in ("tenant", "key_id", "agent", "workflow")):
            yield f"budgets[{i}]: name at least one of tenant, key_id, agent, workflow"
        if budget.get("period") == "run" and not budget.get("workflow"):
            yield f"budgets[{i}].period: 'run' budgets need a workflow (or '*')"


def _from_environment(
    env: Mapping[str, str], list_models: ModelLister | None
) -> tuple[Config, tuple[str, ...]]:
    providers: dict[str, ProviderConfig] = {}
    models: list[ModelConfig] = []
    missing: list[str] = []
    for name, (ptype, base_url, variable) in ENV_PROVIDERS.items():
        key = env.get(variable)
        if not key:
            missing.append(f"{name} (set {variable})")
            continue
        providers[name] = ProviderConfig(type=ptype, base_url=base_url, api_key=key)
        for model, tier in list_models(name) if list_models else ():
            models.append(ModelConfig(name=model, provider=name, tier=tier))  # type: ignore[arg-type]
    return Config(providers=providers, models=models), tuple(missing)


def export_for_workers(settings: Settings, *, metrics_dir: str) -> None:
    """Hand the config to worker processes, which load their settings anew."""
    if settings.source != "environment":
        os.environ["SPENDGATE_CONFIG"] = settings.source
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
