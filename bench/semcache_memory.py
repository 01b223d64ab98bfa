"""Proxy memory with the semantic cache off, on (``wordllama``), and on with routing.

    python -m bench.semcache_memory [--requests 2000] [--json out.json]

Starts the fake upstream and, one after the other, a one-worker proxy per
configuration (memory cache backend):

* ``off``: the semantic cache off (the embedding model is never loaded);
* ``semantic``: ``cache.semantic.enabled`` with the default embedder;
* ``semantic+routing``: the same plus downgrade routing to a baseline model
  (which also loads the o200k tokenizer to count prompts).

Each gets ``--requests`` cache misses with distinct prompts (each embedded,
searched and added to the semantic index) and as many repeats of one
prompt, then its RSS is read: the server process's, and the whole proxy's
(the server and its ledger writer process). The embedder's cost is the
difference between ``semantic`` and ``off``, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.load import Kind
from bench.processes import rss_mib, run_load, start_proxy, start_upstream, wait_healthy
from bench.procstat import tree_rss_mib

CHAT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
CONFIGS = ("off", "semantic", "semantic+routing")


def config(name: str, *, upstream_url: str, workdir: Path) -> dict[str, Any]:
    """A proxy config for one of ``CONFIGS``."""
    cache: dict[str, Any] = {"backend": "memory", "semantic": {"enabled": name != "off"}}
    routing: dict[str, Any] = {"mode": "off"}
    if name == "semantic+routing":
        routing = {"mode": "downgrade", "baseline_model": "gpt-4o"}
    return {
        "providers": {"bench": {"type": "openai", "base_url": upstream_url, "api_key": "bench"}},
        "models": [
            {"name": "gpt-4o", "provider": "bench", "tier": "large"},
            {"name": "gpt-4.1-mini", "provider": "bench", "tier": "medium"},
            {"name": MODEL, "provider": "bench", "tier": "small"},
        ],
        "routing": routing,
        "cache": cache,
        "ledger": {"url": f"sqlite:///{workdir / f'{name}-ledger.db'}"},
    }


def measure(name: str, *, upstream_url: str, workdir: Path, requests: int) -> dict[str, Any]:
    """RSS of one proxy at start and after the load."""
    proxy = wait_healthy(
        start_proxy(workdir, config(name, upstream_url=upstream_url, workdir=workdir), name=name)
    )
    try:
        start = rss_mib(proxy.pid)
        kinds = [Kind("miss", MODEL), Kind("hit", MODEL, unique=False)]
        summary = run_load(proxy.url(CHAT), kinds, concurrency=8, requests=2 * requests)
        return {
            "rss_start_mib": start,
            "rss_after_mib": rss_mib(proxy.pid),
            "proxy_rss_after_mib": tree_rss_mib(proxy.pid)["total"],
            "requests": summary["requests"],
            "statuses": summary.get("statuses"),
        }
    finally:
        proxy.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="spendgate-semmem-") as tmp:
        workdir = Path(tmp)
        upstream = start_upstream(workdir, name="upstream")
        try:
            for name in CONFIGS:
                results[name] = measure(
                    name, upstream_url=upstream.url("/v1"), workdir=workdir, requests=args.requests
                )
        finally:
            upstream.stop()
    print("server process RSS at start and after the load; the whole proxy's after the load")
    print(f"{'config':18} {'start':>10} {'after':>10} {'proxy':>10}  requests  statuses")
    for name, r in results.items():
        print(
            f"{name:18} {r['rss_start_mib']:>6.1f} MiB {r['rss_after_mib']:>6.1f} MiB"
            f" {r['proxy_rss_after_mib']:>6.1f} MiB  {r['requests']:>8}  {r['statuses']}"
        )
    added = results["semantic"]["rss_after_mib"] - results["off"]["rss_after_mib"]
    added_start = results["semantic"]["rss_start_mib"] - results["off"]["rss_start_mib"]
    print(f"semantic cache on adds {added_start:.1f} MiB at start, {added:.1f} MiB after the load")
    results["embedder_adds_mib"] = {"start": added_start, "after": added}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
