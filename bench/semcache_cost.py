"""What the ``wordllama`` path costs per lookup, next to a direct embedding call.

Measured on report-half pairs at the default threshold, one at a time:

* the cache's embedding call (``WordLlamaEmbedder.embed_one``: whitespace
  normalised, vector as a list) against ``TextEmbedder.embed`` called directly;
* the guard on a candidate (facts of both turns, then the checks);
* the reranker on a candidate (words of both turns, features, trees): one
  pass starting with an empty word memory (each new word embedded once),
  then passes with every word memoised.

Each time is the best of a few passes: the machine is shared, and the best
pass is the one least disturbed.

The guard and the reranker run only for candidates the index returns above
the threshold, so a lookup pays them zero to five times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.semcache_scoring import Scored, Setup
from cache.semantic.guard import check_facts, turn_facts
from cache.semantic.pair_features import WordVectors
from cache.semantic.rerank import Reranker, RerankModel
from cache.semantic.turn_window import compared_part
from cache.semantic.wordllama import WordLlamaEmbedder

SAMPLE = 2000
ROUNDS = 3


def _per_call_us(calls: Sequence[Callable[[], object]], *, rounds: int = ROUNDS) -> float:
    """Mean time per call over ``calls``, the best of ``rounds`` passes (the machine is shared)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for call in calls:
            call()
        best = min(best, time.perf_counter() - start)
    return best / max(1, len(calls)) * 1e6


def lookup_cost(setup: Setup, candidates: Sequence[Scored]) -> dict[str, Any]:
    """Microseconds per call of each step, and each step over the direct embedding call."""
    embedder = setup.embedded.embedder
    if not isinstance(embedder, WordLlamaEmbedder) or setup.model is None:
        raise ValueError("the cost is measured for wordllama with its reranker")
    pairs = [(s.pair.a, s.pair.b, s.similarity) for s in candidates[:SAMPLE]]
    texts = [t for a, b, _ in pairs for t in (a, b)][:SAMPLE]
    model = embedder.model
    reranker = Reranker(WordVectors(model), RerankModel.from_dict(setup.model))

    def rerank(a: str, b: str, cos: float) -> Callable[[], object]:
        return lambda: reranker.score(
            reranker.prepare(compared_part(a)), reranker.prepare(compared_part(b)), similarity=cos
        )

    direct = _per_call_us([lambda t=t: model.embed(t) for t in texts])
    steps = {
        "embed (cache call)": _per_call_us([lambda t=t: embedder.embed_one(t) for t in texts]),
        "guard, per candidate": _per_call_us(
            [
                lambda a=a, b=b: check_facts(
                    turn_facts(compared_part(a)), turn_facts(compared_part(b))
                )
                for a, b, _ in pairs
            ]
        ),
        "rerank, word memory empty": _per_call_us([rerank(*p) for p in pairs], rounds=1),
        "rerank, words memoised": _per_call_us([rerank(*p) for p in pairs]),
    }
    print(f"\ncost per call on {len(pairs)} candidate pairs at the default threshold:")
    print(f"  {'embed (direct TextEmbedder.embed)':38} {direct:8.1f} us   1.00x")
    for name, us in steps.items():
        print(f"  {name:38} {us:8.1f} us  {us / direct:5.2f}x")
    return {"direct_embed_us": direct, "steps_us": steps, "pairs": len(pairs)}
