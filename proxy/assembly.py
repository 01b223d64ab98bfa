"""Builds the pipeline's stages from the settings (the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.forward import Forwarder
from proxy.metrics import Metrics
from proxy.models import ModelTable
from proxy.settings import Settings
from proxy.stages import AccountingStage, CacheStage, RouterStage

Probe = Callable[[], Awaitable[dict[str, Any]]]
Closer = Callable[[], Awaitable[None]]


@dataclass
class Stages:
    router: RouterStage
    cache: CacheStage
    accounting: AccountingStage
    replay: Callable[[dict[str, Any], bool], list[dict[str, Any]]]
    assembler: Callable[[], Any]
    stored_keys: list[tuple[str, str, str]] = field(default_factory=list)
    probes: dict[str, Probe] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)
    gauges: list[Callable[[], None]] = field(default_factory=list)


async def build_stages(
    settings: Settings, *, models: ModelTable, metrics: Metrics, forwarder: Forwarder
) -> Stages:
    from proxy.accounting import MetricsAccounting
    from proxy.cache_stage import NoCache, NullAssembler, no_replay
    from proxy.routing_stage import Router

    router = Router(settings, models=models, metrics=metrics)
    return Stages(
        router=router,
        cache=NoCache(),
        accounting=MetricsAccounting(metrics),
        replay=no_replay,
        assembler=NullAssembler,
    )
