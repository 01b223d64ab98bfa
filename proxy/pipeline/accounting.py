"""The accounting stage: price the exchange, then record it.

``charge`` computes cost, baseline and savings in integer micro-dollars:

* cost: the served call's usage at the served model's prices, plus any
  overhead the proxy spent on it (a semantic-cache embedding). A cache hit
  costs only that overhead: its served prices are zero.
* baseline: what the same request would have cost on the model the client
  asked for (for ``auto``: the tenant's or the config's ``baseline_model``),
  its prompt counted with that model's tokenizer (``pricing.baseline``).
* savings = baseline - cost; negative after a fallback to a pricier model.

``record`` hands the exchange to the metrics and the sinks (the ledger writer,
budget settling); it never
raises and never waits on I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pricing.baseline import baseline_usage
from pricing.catalog import Catalog, ModelEntry, PriceQuote
from pricing.tokens import TokenCounter
from pricing.usage import NO_USAGE, Usage
from proxy.pipeline.exchange import Exchange, Pricing
from proxy.pipeline.ledger_sink import charges_of
from proxy.pipeline.metrics import Children, Metrics
from proxy.pipeline.models import AUTO_MODEL, ModelTable
from proxy.settings import Settings

log = logging.getLogger("spendgate")

DEFAULT_ENCODING = "o200k_base"
CHARS_PER_TOKEN = 4  # the documented estimate when no usage and no tokenizer is available
_MAX_REMEMBERED_NAMES = 4096


class Accountant:
    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog,
        counter: TokenCounter,
        models: ModelTable,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._counter = counter
        self._models = models
        self._metrics = metrics
        self._sinks: list[Callable[[Exchange], None]] = []
        # The catalog does not change under an Accountant: each name is resolved once.
        self._entries: dict[str, ModelEntry | None] = {}
        self._requests = Children(metrics.requests)
        self._upstream_seconds = Children(metrics.upstream_seconds)
        self._proxy_seconds = Children(metrics.proxy_seconds)
        self._tokens = Children(metrics.tokens)
        self._money = {
            "cost": Children(metrics.cost),
            "baseline": Children(metrics.baseline),
            "savings": Children(metrics.savings),
            "overspend": Children(metrics.overspend),
        }

    def add_sink(self, sink: Callable[[Exchange], None]) -> None:
        """Run ``sink`` on every recorded exchange (ledger writer, budget settling)."""
        self._sinks.append(sink)

    def entry_for(self, model_name: str) -> ModelEntry | None:
        """The catalog entry of a configured (or catalog) model name, or None."""
        try:
            return self._entries[model_name]
        except KeyError:
            pass
        target = self._models.get(model_name)
        upstream = target.model.upstream_name if target else model_name
        entry = self._catalog.get(upstream) or self._catalog.get(model_name)
        if len(self._entries) < _MAX_REMEMBERED_NAMES:
            self._entries[model_name] = entry
        return entry

    def quote(self, model_name: str, prompt_tokens: int) -> PriceQuote:
        """Unit prices for ``model_name`` at this prompt size (``Catalog.quote`` of its entry)."""
        entry = self.entry_for(model_name)
        if entry is None:
            return self._catalog.quote(model_name, prompt_tokens=prompt_tokens)
        return PriceQuote(
            prices=entry.prices_for(prompt_tokens), source=entry.origin, model=entry.name
        )

    def encodings_in_use(self) -> set[str]:
        """The tokenizers of the configured models (and of the default estimate)."""
        names = {DEFAULT_ENCODING}
        for target in self._models.targets:
            entry = self.entry_for(target.model.name)
            if entry is not None:
                names.add(entry.encoding)
        return names

    def baseline_model(self, ex: Exchange) -> str | None:
        if ex.requested_model and ex.requested_model != AUTO_MODEL:
            return ex.requested_model
        tenant = self._settings.config.tenants.get(ex.tenant)
        if tenant and tenant.baseline_model:
            return tenant.baseline_model
        return self._settings.config.routing.baseline_model or ex.served_model

    def prompt_tokens(self, ex: Exchange, model_name: str) -> tuple[int, bool]:
        """Local count of the request's prompt for ``model_name``: (tokens, exact)."""
        entry = self.entry_for(model_name)
        encoding = entry.encoding if entry else DEFAULT_ENCODING
        messages = ex.body.get("messages")
        if not isinstance(messages, list):
            text = ex.body.get("input")
            count = self._counter.count_text(str(text or ""), encoding=encoding)
            return count.tokens, count.source == "tiktoken"
        tools = ex.body.get("tools")
        counted = self._counter.count_messages(messages, encoding=encoding)
        extra = self._counter.count_tools(
            tools if isinstance(tools, list) else None, encoding=encoding
        )
        return counted.tokens + extra.tokens, counted.source == "tiktoken"

    def charge(self, ex: Exchange) -> None:
        try:
            self._charge(ex)
        except Exception:  # pricing must never fail a request that was served
            log.exception("could not price request %s", ex.request_id)

    def _charge(self, ex: Exchange) -> None:
        ex.pricing = self._pricing(ex)
        ex.charges = charges_of(ex, ex.pricing)
        if ex.pricing is not None and ex.pricing.price_source == "unknown":
            self._metrics.unknown_price.labels(ex.served_model or "").inc()

    def _pricing(self, ex: Exchange) -> Pricing | None:
        served = ex.served_model
        if served is None:
            return None
        usage = self._usage(ex, served) or NO_USAGE
        quote = self.quote(served, usage.prompt_tokens)
        baseline_name = self.baseline_model(ex) or served
        if baseline_name == served:
            base_usage = usage
        else:
            tokens, _ = self.prompt_tokens(ex, baseline_name)
            served_entry, base_entry = self.entry_for(served), self.entry_for(baseline_name)
            same_provider = bool(
                served_entry and base_entry and served_entry.provider == base_entry.provider
            )
            base_usage = baseline_usage(
                served=usage, baseline_prompt_tokens=tokens, baseline_has_prompt_cache=same_provider
            )
        base_quote = self.quote(baseline_name, base_usage.prompt_tokens)
        return Pricing(
            usage, quote.prices, quote.source, baseline_name, base_usage, base_quote.prices,
            base_quote.source, self._catalog.version,
        )  # fmt: skip

    def _usage(self, ex: Exchange, served: str | None) -> Usage | None:
        if ex.usage is not None:
            return ex.usage
        if served is None or (ex.status >= 400 and not ex.completion_chars):
            return None
        prompt, _ = self.prompt_tokens(ex, served)
        completion = -(-ex.completion_chars // CHARS_PER_TOKEN)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, source="estimated")

    def record(self, ex: Exchange) -> None:
        for step in (self._observe, *self._sinks):
            try:
                step(ex)
            except Exception:  # recording must never fail the request it records
                log.exception("could not record request %s", ex.request_id)

    def _observe(self, ex: Exchange) -> None:
        pricing = ex.pricing
        model = ex.served_model or ""
        self._requests(ex.endpoint, model, ex.provider or "", str(ex.status)).inc()
        if ex.provider is not None and ex.upstream_s:
            self._upstream_seconds(ex.provider).observe(ex.upstream_s)
        self._proxy_seconds(ex.endpoint).observe(max(0.0, ex.elapsed_s() - ex.upstream_s))
        charges = ex.charges
        if pricing is None or charges is None or charges.cost is None:
            return
        labels = (ex.tenant, model, ex.cache_status)
        usage = pricing.usage
        self._tokens(*labels, "prompt").inc(usage.prompt_tokens)
        self._tokens(*labels, "completion").inc(usage.completion_tokens)
        money = self._money
        money["cost"](*labels).inc(charges.cost)
        if charges.baseline_cost is not None and charges.savings is not None:
            money["baseline"](*labels).inc(charges.baseline_cost)
            if charges.savings >= 0:
                money["savings"](*labels).inc(charges.savings)
            else:
                money["overspend"](*labels).inc(-charges.savings)
