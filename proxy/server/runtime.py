"""Everything one app instance holds: built from settings, closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.ops.access_log import flush_access_log
from proxy.ops.admin import OperatorView
from proxy.ops.login_throttle import LoginThrottle
from proxy.pipeline.auth import Authenticator
from proxy.pipeline.chat import ChatHandler
from proxy.pipeline.exchange import RequestIds
from proxy.pipeline.forward import Forwarder
from proxy.pipeline.metrics import Metrics
from proxy.pipeline.models import ModelTable
from proxy.pipeline.passthrough import PassthroughHandler
from proxy.pipeline.policy import EndpointPolicy
from proxy.pipeline.ratelimit import RateLimiter
from proxy.pipeline.redis_keys import redis_keys
from proxy.pipeline.upstream import TransportFactory, UpstreamClients
from proxy.providers import build_provider
from proxy.providers.base import Provider, ProviderSettings
from proxy.server.assembly import Stages, build_stages
from proxy.server.hooks import Closer, Probe, Refresher
from proxy.server.ledger_setup import stored_key_reloader
from proxy.settings import Settings

log = logging.getLogger("spendgate")

GAUGE_REFRESH_S = 2.0


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    models: ModelTable
    auth: Authenticator
    clients: UpstreamClients
    chat: ChatHandler
    passthrough: PassthroughHandler
    stages: Stages
    operator: OperatorView
    probes: dict[str, Probe] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)
    gauges: list[Callable[[], None]] = field(default_factory=list)
    refreshers: list[Refresher] = field(default_factory=list)
    """State read again every few seconds (stored keys), not before every scrape."""

    async def refresh_gauges(self) -> None:
        """Bring gauges (backlogs, circuit states) up to date before a scrape."""
        for refresh in self.gauges:
            refresh()

    async def refresh_gauges_forever(self, every_s: float = GAUGE_REFRESH_S) -> None:
        """Keep this worker's gauges fresh: with ``--workers N`` a scrape reaches one worker."""
        while True:
            await asyncio.sleep(every_s)
            flush_access_log()
            try:
                await self.refresh_gauges()
            except Exception:  # a gauge is observability: never let it end the loop
                log.exception("could not refresh gauges")
            for refresh in self.refreshers:
                try:
                    await refresh()
                except Exception:  # the state loaded before stays in force
                    log.exception("could not refresh state")

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        report: dict[str, Any] = {}
        ready = True
        for name, probe in self.probes.items():
            try:
                result = await probe()
            except Exception as exc:  # a probe failing is a readiness answer, not a crash
                result = {"ok": False, "error": type(exc).__name__}
            report[name] = result
            if result.get("critical", True):
                ready = ready and bool(result.get("ok"))
        return ready, report

    async def aclose(self) -> None:
        self.metrics.process_exiting()
        flush_access_log()
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:  # shutdown goes on: the next resource still needs closing
                log.exception("error while shutting down")


def provider_settings(settings: Settings) -> dict[str, ProviderSettings]:
    return {
        name: ProviderSettings(
            name=name,
            type=cfg.type,
            base_url=cfg.base_url,
            api_key=cfg.api_key,
            forward_client_key=cfg.forward_client_key,
            headers=dict(cfg.headers),
        )
        for name, cfg in settings.config.providers.items()
    }


async def build_runtime(
    settings: Settings, *, transport_factory: TransportFactory | None = None
) -> Runtime:
    config = settings.config
    providers: dict[str, Provider] = {
        name: build_provider(ps) for name, ps in provider_settings(settings).items()
    }
    clients = UpstreamClients(
        {
            name: (cfg.connect_timeout_s, cfg.read_timeout_s, cfg.max_connections)
            for name, cfg in config.providers.items()
        },
        transport=config.server.transport,
        transport_factory=transport_factory,
    )
    metrics = Metrics(multiprocess_dir=settings.metrics_dir)
    models = ModelTable(config.models)
    forwarder = Forwarder(providers, clients)
    stages = await build_stages(settings, models=models, metrics=metrics, forwarder=forwarder)
    auth = Authenticator(config.auth, stored_keys=stages.stored_keys)
    keys = redis_keys(config.cache)
    policy = EndpointPolicy(
        auth=auth,
        limiter=RateLimiter(redis=stages.redis, prefix=keys.rate_limits),
        router=stages.router,
        accounting=stages.accounting,
        max_body_bytes=config.server.max_body_bytes,
        ids=RequestIds(),
    )
    chat = ChatHandler(
        policy=policy,
        router=stages.router,
        cache=stages.cache,
        forwarder=forwarder,
        accounting=stages.accounting,
        replay=stages.replay,
        assembler=stages.assembler,
    )
    passthrough = PassthroughHandler(policy=policy, forwarder=forwarder)
    operator = OperatorView(
        settings=settings,
        auth=auth,
        throttle=LoginThrottle(redis=stages.redis, prefix=keys.login),
        ledger=stages.ledger,
        budget_usage=stages.router.budget_usage,
    )
    runtime = Runtime(settings, metrics, models, auth, clients, chat, passthrough, stages, operator)
    runtime.probes.update(stages.probes)
    runtime.probes["upstreams"] = _upstreams_probe(settings)
    runtime.closers.append(clients.aclose)
    runtime.closers.extend(stages.closers)
    runtime.gauges.extend(stages.gauges)
    if stages.ledger is not None:
        runtime.refreshers.append(stored_key_reloader(stages.ledger, auth))
    return runtime


def _upstreams_probe(settings: Settings) -> Probe:
    async def probe() -> dict[str, Any]:
        providers = settings.config.providers
        return {
            "ok": bool(providers),
            "configured": sorted(providers),
            "missing": list(settings.missing_providers),
        }

    return probe
