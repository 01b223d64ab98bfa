"""The configured models, by the names clients use."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from proxy.config import ModelConfig
from proxy.errors import ModelNotFoundError
from proxy.pipeline.exchange import Target

AUTO_MODEL = "auto"


class ModelTable:
    """Name -> target lookups, and the ``/v1/models`` listing."""

    def __init__(self, models: Iterable[ModelConfig]) -> None:
        self._targets = {m.name: Target(m, m.provider) for m in models}
        self._created = int(time.time())

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    @property
    def targets(self) -> list[Target]:
        return list(self._targets.values())

    def names(self) -> list[str]:
        return list(self._targets)

    def get(self, name: str) -> Target | None:
        return self._targets.get(name)

    def resolve(self, name: str) -> Target:
        """The target for a requested name; 404 naming what is available."""
        target = self._targets.get(name)
        if target is None:
            raise self.not_found(name)
        return target

    def not_found(self, name: str) -> ModelNotFoundError:
        available = ", ".join([*self._targets, AUTO_MODEL]) or "(none configured)"
        return ModelNotFoundError(
            f"The model '{name[:200]}' does not exist or is not configured. Available models: {available}",
            param="model",
        )

    def listing(self) -> dict[str, Any]:
        """OpenAI's ``list`` object of models, plus ``auto``."""
        data = [
            {"id": name, "object": "model", "created": self._created, "owned_by": t.provider}
            for name, t in self._targets.items()
        ]
        data.append(
            {"id": AUTO_MODEL, "object": "model", "created": self._created, "owned_by": "spendgate"}
        )
        return {"object": "list", "data": data}
