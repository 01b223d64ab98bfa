"""The cache stage."""

from __future__ import annotations

from typing import Any

from proxy.exchange import Exchange


class NoCache:
    async def lookup(self, ex: Exchange) -> dict[str, Any] | None:
        return None

    async def store(self, ex: Exchange, completion: dict[str, Any]) -> None:
        return None


class NullAssembler:
    def feed(self, chunk: dict[str, Any]) -> None:
        return None

    def result(self) -> dict[str, Any] | None:
        return None


def no_replay(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    return []
