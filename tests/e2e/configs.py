"""The configs the end-to-end proxies serve: the simulator's providers and models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.harness import SIM_KEY
from tests.support.servers import Simulator


def simulator_config(sim: Simulator, workdir: Path, **sections: Any) -> dict[str, Any]:
    """A config whose providers are ``sim``; ``sections`` replace whole top-level keys."""
    config: dict[str, Any] = {
        "providers": {
            "openai": {
                "type": "openai",
                "base_url": sim.openai_base_url,
                "api_key": SIM_KEY,
            },
            "anthropic": {
                "type": "anthropic",
                "base_url": sim.base_url,
                "api_key": SIM_KEY,
            },
        },
        "models": [
            {"name": "gpt-4o", "provider": "openai", "tier": "large"},
            {"name": "gpt-4o-mini", "provider": "openai", "tier": "small"},
            {
                "name": "claude-sonnet",
                "provider": "anthropic",
                "upstream": "claude-sonnet-4-5",
                "tier": "large",
            },
            {"name": "text-embedding-3-small", "provider": "openai"},
        ],
        "routing": {"breaker_failures": 1000},
        "ledger": {"url": f"sqlite:///{workdir / 'ledger.db'}"},
        "cache": {"backend": "memory"},
    }
    config.update(sections)
    return config


# Models that only the fault tests use, each under its own upstream name so a
# fault armed for one never lands on another test's request.
PRICE = {"input": "1.00", "output": "2.00"}
FAULT_MODELS: list[dict[str, Any]] = [
    {
        "name": "gpt-faults",
        "provider": "openai",
        "upstream": "gpt-faults",
        "price": PRICE,
    },
    {
        "name": "claude-faults",
        "provider": "anthropic",
        "upstream": "claude-faults",
        "price": PRICE,
    },
    {
        "name": "gpt-timeout",
        "provider": "openai-short",
        "upstream": "gpt-timeout",
        "price": PRICE,
    },
    {
        "name": "claude-nokey",
        "provider": "anthropic-nokey",
        "upstream": "claude-nokey",
        "price": PRICE,
    },
]
MAX_ATTEMPTS = 2
PROXY_KEY = "k1"
PROXY_TENANT = "t1"


def main_config(sim: Simulator, workdir: Path) -> dict[str, Any]:
    """The main proxy's config: the simulator's providers, the fault models, quick retries."""
    config = simulator_config(sim, workdir)
    config["providers"]["openai-short"] = {
        "type": "openai",
        "base_url": sim.openai_base_url,
        "api_key": SIM_KEY,
        "read_timeout_s": 1,
    }
    config["providers"]["anthropic-nokey"] = {
        "type": "anthropic",
        "base_url": sim.base_url,
    }
    config["models"].extend(FAULT_MODELS)
    config["routing"] = {
        "max_attempts": MAX_ATTEMPTS,
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        "breaker_failures": 1000,
    }
    return config
