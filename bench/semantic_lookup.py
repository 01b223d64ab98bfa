"""Semantic index lookup latency: memory and Redis, 10k and 100k entries.

    python -m bench.semantic_lookup [--sizes 10000,100000] [--queries 200] [--json out.json]

Entries are real questions and sentences from the development set, embedded
with the ``hash`` embedder, either all in one context or spread over 1,000
contexts. Half the queries are rewrites of stored texts (should hit), half
are unseen texts. Each configuration is measured with the SimHash pre-filter
and, where affordable, by brute force (cosine against every entry of the
context), which also gives the pre-filter's recall. Redis runs against the
real server at 127.0.0.1:6379 under a unique prefix that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from redis.asyncio import Redis

from bench.semcache_pairs import DEV_SET, id_rank
from cache.semantic.hash_embedder import HashEmbedder
from cache.semantic.index import IndexEntry, MemoryIndex, SemanticIndex
from cache.semantic.redis_index import RedisIndex, vector_search_support
from cache.semantic.service import CANDIDATES_PER_LOOKUP
from cache.semantic.vectors import Vector

THRESHOLD = 0.91
SPREAD_CONTEXTS = 1000
WRITE_CONCURRENCY = 64
BRUTE_FORCE_MAX_QUERIES = 20


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    entries: int
    layout: str
    method: str
    queries: int
    p50_ms: float
    p99_ms: float
    hit_rate: float
    bytes_per_entry: float | None = None


def load_texts(count: int) -> list[str]:
    """``count`` distinct texts of the development set, in a fixed order."""
    seen: dict[str, int] = {}
    with gzip.open(DEV_SET, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            for text in (row["text_a"], row["text_b"]):
                seen.setdefault(text, id_rank(text))
    texts = sorted(seen, key=seen.__getitem__)
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} distinct texts available")
    return texts[:count]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fill(index: SemanticIndex, entries: list[IndexEntry], contexts: list[str]) -> None:
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def one(i: int) -> None:
        async with semaphore:
            await index.add(contexts[i], entries[i])

    await asyncio.gather(*(one(i) for i in range(len(entries))))


async def measure(
    index: SemanticIndex, queries: list[tuple[str, Vector, str | None]]
) -> tuple[list[float], list[list[str]]]:
    """Latency (ms) and the exact keys found for each query (as many as a lookup asks for)."""
    latencies, found = [], []
    for context, vector, _ in queries:
        start = time.perf_counter()
        candidates = await index.search(
            context, vector, threshold=THRESHOLD, limit=CANDIDATES_PER_LOOKUP
        )
        latencies.append((time.perf_counter() - start) * 1000)
        found.append([c.exact_key for c in candidates])
    return latencies, found


def result(
    backend: str,
    size: int,
    layout: str,
    method: str,
    latencies: list[float],
    found: list[list[str]],
    expected: list[str | None],
) -> Result:
    hits = sum(1 for f, e in zip(found, expected, strict=True) if e is not None and e in f)
    wanted = sum(1 for e in expected if e is not None) or 1
    return Result(
        backend,
        size,
        layout,
        method,
        len(latencies),
        statistics.median(latencies),
        percentile(latencies, 0.99),
        hits / wanted,
    )


async def run_size(
    size: int, texts: list[str], vectors: list[Vector], n_queries: int, redis: Redis | None
) -> list[Result]:
    embedder = HashEmbedder()
    entries = [IndexEntry(f"ex:{i}", texts[i], vectors[i]) for i in range(size)]
    results = []
    for layout in ("one-context", f"{SPREAD_CONTEXTS}-contexts"):
        contexts = (
            ["ctx"] * size
            if layout == "one-context"
            else [f"ctx{i % SPREAD_CONTEXTS}" for i in range(size)]
        )
        queries: list[tuple[str, Vector, str | None]] = []
        for q in range(n_queries):
            if q % 2 == 0:  # a rewrite of a stored text: should hit
                i = (q * 7919) % size
                queries.append(
                    (contexts[i], embedder.embed_one(texts[i].lower().rstrip("?.! ")), f"ex:{i}")
                )
            else:  # an unseen text
                queries.append(
                    (contexts[(q * 31) % size], embedder.embed_one(texts[size + q]), None)
                )
        expected = [q[2] for q in queries]
        memory = MemoryIndex(size + 1)
        await fill(memory, entries, contexts)
        lat, found = await measure(memory, queries)
        results.append(result("memory", size, layout, "simhash", lat, found, expected))
        memory.prefilter = False
        few = queries[:BRUTE_FORCE_MAX_QUERIES]
        lat, found = await measure(memory, few)
        results.append(
            result("memory", size, layout, "brute-force", lat, found, expected[: len(few)])
        )
        if redis is not None:
            prefix = f"bench-semcache-{uuid.uuid4().hex}"
            index = RedisIndex(
                redis, prefix=prefix, ttl_s=3600, max_per_context=size, op_timeout_s=30.0
            )
            try:
                await fill(index, entries, contexts)
                lat, found = await measure(index, queries)
                measured = result("redis", size, layout, "simhash", lat, found, expected)
                used = await memory_usage(redis, prefix)
                results.append(replace(measured, bytes_per_entry=used / size))
            finally:
                keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=5000)]
                for start in range(0, len(keys), 1000):
                    await redis.delete(*keys[start : start + 1000])
        for r in results[-3:]:
            print_row(r)
    return results


async def memory_usage(redis: Redis, prefix: str) -> int:
    """Bytes Redis reports for every key under ``prefix``."""
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}:*", count=5000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    return total


def print_row(r: Result) -> None:
    print(
        f"{r.backend:7} {r.entries:>7} {r.layout:15} {r.method:12} n={r.queries:<4} "
        f"p50 {r.p50_ms:8.2f} ms  p99 {r.p99_ms:8.2f} ms  hit {r.hit_rate:.3f}"
        + (f"  {r.bytes_per_entry:.0f} B/entry" if r.bytes_per_entry else ""),
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    sizes = [int(s) for s in args.sizes.split(",")]
    biggest = max(sizes)
    texts = load_texts(biggest + args.queries + 1)
    embedder = HashEmbedder()
    start = time.perf_counter()
    vectors = [embedder.embed_one(t) for t in texts[:biggest]]
    embed_us = (time.perf_counter() - start) / biggest * 1e6
    print(f"hash embedding: {embed_us:.0f} us per text (mean over {biggest})")
    redis: Redis | None = None
    support = None
    if not args.no_redis:
        redis = Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
        support = await vector_search_support(redis)
        print(
            f"redis {support.redis_version}: modules={list(support.modules)} "
            f"search module={support.has_search_module} VSIM={support.has_vector_sets}"
        )
    results: list[Result] = []
    try:
        for size in sizes:
            results += await run_size(size, texts, vectors, args.queries, redis)
    finally:
        if redis is not None:
            await redis.aclose()
    return {
        "threshold": THRESHOLD,
        "embed_us_per_text": embed_us,
        "redis_vector_search": asdict(support) if support else None,
        "results": [asdict(r) for r in results],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="semantic index lookup latency")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    out = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
