"""The catalog as ``spendgate pricing`` shows it: a table, one entry's detail, stale entries.

A price is only as good as the day it was read. An entry's ``as_of`` is the
date its source was read (or, for entries imported from a LiteLLM wheel,
the wheel's version, dated by the day of the import); entries older than
``STALE_AFTER`` are listed after the table so that they get refreshed
(``spendgate pricing import --from-litellm-wheel``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta

from pricing.catalog import Catalog, ModelEntry

STALE_AFTER = timedelta(days=180)


def entry_date(entry: ModelEntry, *, imported_on: date | None) -> date | None:
    """The day ``entry``'s prices were read, if it can be told."""
    try:
        return date.fromisoformat(entry.as_of)
    except ValueError:
        # A LiteLLM version: as old as the import that wrote it, at least.
        return imported_on if entry.origin == "override" else None


def stale_entries(
    catalog: Catalog, *, today: date, imported_on: date | None = None
) -> list[tuple[ModelEntry, date | None]]:
    """Entries read more than ``STALE_AFTER`` before ``today``, or whose age is unknown."""
    stale = []
    for entry in sorted(catalog.entries.values(), key=lambda e: (e.provider, e.name)):
        if entry.origin == "config":
            continue  # the operator's own price: theirs to keep current
        read = entry_date(entry, imported_on=imported_on)
        if read is None or today - read > STALE_AFTER:
            stale.append((entry, read))
    return stale


def format_stale(stale: list[tuple[ModelEntry, date | None]], *, today: date) -> str:
    """Warning lines for ``stale_entries`` (empty when there are none)."""
    if not stale:
        return ""
    days = STALE_AFTER.days
    lines = [f"warning: {len(stale)} price entries are older than {days} days; refresh them:"]
    for entry, read in stale:
        age = f"{(today - read).days} days old" if read else "age unknown"
        lines.append(f"  {entry.name} (as of {entry.as_of or '?'}, {age}; {entry.source or '-'})")
    return "\n".join(lines) + "\n"


def format_catalog(catalog: Catalog, model: str | None = None) -> str:
    """A readable table of every entry, or the detail of one (``spendgate pricing [MODEL]``)."""
    if model is not None:
        entry = catalog.get(model)
        if entry is None:
            return f"{model}: not in the price catalog (its calls are recorded with price_source=unknown)\n"
        return _format_entry(entry, catalog.version)
    header = ("MODEL", "PROVIDER", "INPUT", "CACHED", "CACHE_WRITE", "OUTPUT", "CONTEXT", "FROM")
    rows: list[tuple[str, ...]] = [header]
    for e in sorted(catalog.entries.values(), key=lambda e: (e.provider, e.name)):
        p = e.prices
        prices = (p.input, p.cached_input, p.cache_write, p.output, e.context_window)
        rows.append((e.name, e.provider, *map(str, prices), e.origin + ("*" if e.tiers else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    lines.append(
        f"USD per 1M tokens. * = prompt-size tiers. {len(catalog)} models, version {catalog.version}"
    )
    return "\n".join(lines) + "\n"


def _format_entry(entry: ModelEntry, version: str) -> str:
    p = entry.prices
    caps = [name for name, on in asdict(entry.capabilities).items() if on]
    lines = [
        f"model:          {entry.name}",
        f"provider:       {entry.provider} ({entry.mode})",
        f"aliases:        {', '.join(entry.aliases) or '-'}",
        "prices (USD per 1M tokens):",
        f"  input         {p.input}",
        f"  cached_input  {p.cached_input}",
        f"  cache_write   {p.cache_write}",
        f"  output        {p.output}",
    ]
    for t in entry.tiers:
        tp = t.prices
        lines.append(
            f"  prompt > {t.above_prompt_tokens}: input {tp.input}, cached_input "
            f"{tp.cached_input}, cache_write {tp.cache_write}, output {tp.output}"
        )
    exact = "exact" if entry.encoding_exact else "approximation"
    lines += [
        f"context_window: {entry.context_window}",
        f"max_output:     {entry.max_output}",
        f"capabilities:   {', '.join(caps) or '-'}",
        f"tokenizer:      {entry.encoding} ({exact})",
        f"price from:     {entry.origin}, as of {entry.as_of or '?'}",
        f"source:         {entry.source or '-'}",
        f"catalog:        version {version}",
    ]
    return "\n".join(lines) + "\n"
