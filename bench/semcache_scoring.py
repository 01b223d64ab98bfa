"""Scoring the development pairs as the cache would: cosine, guard, reranker.

Used by ``bench.semcache_eval``: a pair "hits" when its cosine reaches the
threshold, the guard allows it, and (``wordllama``) it is a near-duplicate
or the reranker's probability reaches the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.semcache_adversarial import Case
from bench.semcache_pairs import (
    Embedded,
    Pair,
    TextInfo,
    embed_texts,
    feature_rows,
    word_vectors,
)
from bench.semcache_trees import predict
from cache.semantic.guard import GuardPolicy
from cache.semantic.service import default_guard_policy

THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(20)] + [0.995]
CUTS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]
RERANK_FLOOR = 0.80  # pairs below every threshold of the table are never reranked


@dataclass(frozen=True, slots=True)
class Scored:
    pair: Pair
    similarity: float
    guard_ok: bool
    score: float  # reranker probability; 1.0 without a reranker or for a near-duplicate
    noise: bool  # label 0, yet identical after case/punctuation/whitespace normalisation


@dataclass(frozen=True, slots=True)
class Rates:
    precision: float
    recall: float
    false_hit_rate: float
    hits: int


@dataclass
class Setup:
    """One embedder's view of the pairs: vectors, guard policy, reranker model."""

    spec: str
    embedded: Embedded
    info: TextInfo
    policy: GuardPolicy
    model: dict[str, Any] | None

    def score_pairs(self, triples: Sequence[tuple[str, str, float]]) -> list[float]:
        """Reranker probability per (text, text, cosine); 1.0 when the reranker is not asked."""
        asked = [t for t in triples if not self.info.near_duplicate(t[0], t[1])]
        if self.model is None or not asked:
            return [1.0] * len(triples)
        x = feature_rows(asked, self.info, word_vectors(self.embedded))
        found = dict(zip(((a, b) for a, b, _ in asked), predict(self.model, x), strict=True))
        return [float(found.get((a, b), 1.0)) for a, b, _ in triples]

    def scored(self, pairs: Sequence[Pair]) -> list[Scored]:
        sims = [self.embedded.cosine(p.a, p.b) for p in pairs]
        guard = [self.info.guard_ok(p.a, p.b, self.policy) for p in pairs]
        reach = [i for i, p in enumerate(pairs) if guard[i] and sims[i] >= RERANK_FLOOR]
        scores = [0.0] * len(pairs)
        for i, v in zip(
            reach, self.score_pairs([(pairs[i].a, pairs[i].b, sims[i]) for i in reach]), strict=True
        ):
            scores[i] = v
        facts = self.info.facts
        return [
            Scored(
                p,
                sims[i],
                guard[i],
                scores[i],
                p.label == 0 and facts[p.a].normal == facts[p.b].normal,
            )
            for i, p in enumerate(pairs)
        ]


def rates(scored: Sequence[Scored], hits: Sequence[Scored]) -> Rates:
    positives = sum(s.pair.label for s in scored) or 1
    negatives = sum(1 - s.pair.label for s in scored) or 1
    true = sum(s.pair.label for s in hits)
    return Rates(
        true / len(hits) if hits else 1.0,
        true / positives,
        (len(hits) - true) / negatives,
        len(hits),
    )


def hits(
    scored: Sequence[Scored], threshold: float, *, guard: bool = True, cut: float | None = None
) -> list[Scored]:
    """The pairs that would be served at ``threshold`` (guard, then reranker at ``cut``)."""
    return [
        s
        for s in scored
        if s.similarity >= threshold
        and (not guard or s.guard_ok)
        and (cut is None or s.score >= cut)
    ]


def table(scored: Sequence[Scored], cut: float | None) -> list[dict[str, Any]]:
    """Per threshold: without guard, with guard, with guard and reranker, and clean precision."""
    rows = []
    for t in THRESHOLDS:
        final = hits(scored, t, cut=cut)
        clean = [s for s in final if not s.noise]
        row: dict[str, Any] = {
            "threshold": t,
            "raw": rates(scored, hits(scored, t, guard=False)),
            "guard": rates(scored, hits(scored, t)),
            "precision_clean": sum(s.pair.label for s in clean) / len(clean) if clean else 1.0,
        }
        if cut is not None:
            row["rerank"] = rates(scored, final)
        rows.append(row)
    return rows


def choose(rows: Sequence[dict[str, Any]], target: float) -> float:
    """Lowest threshold whose guarded precision, label noise aside, reaches ``target``."""
    for row in rows:
        if row["precision_clean"] >= target:
            return float(row["threshold"])
    return float(rows[-1]["threshold"])


def cut_curve(scored: Sequence[Scored], threshold: float) -> list[dict[str, Any]]:
    """Precision and recall at ``threshold`` for each reranker cut (the PR curve)."""
    return [{"cut": c, **asdict(rates(scored, hits(scored, threshold, cut=c)))} for c in CUTS]


def by_source(
    scored: Sequence[Scored], threshold: float, cut: float | None
) -> dict[str, dict[str, float]]:
    out = {}
    for source in sorted({s.pair.source for s in scored}):
        rows = [s for s in scored if s.pair.source == source]
        r = rates(rows, hits(rows, threshold, cut=cut))
        out[source] = {"pairs": len(rows), **asdict(r)}
    return out


def adversarial(
    setup: Setup, cases: Sequence[Case], threshold: float, cut: float | None
) -> dict[str, dict[str, float]]:
    """Hit rate by set and edit kind without the guard, with it, and with the reranker too."""
    sims = [setup.embedded.cosine(base, text) for _, _, base, text in cases]
    guard = [setup.info.guard_ok(base, text, setup.policy) for _, _, base, text in cases]
    reach = [i for i in range(len(cases)) if guard[i] and sims[i] >= threshold]
    scores = dict(
        zip(
            reach,
            setup.score_pairs([(cases[i][2], cases[i][3], sims[i]) for i in reach]),
            strict=True,
        )
    )
    counts: dict[str, list[int]] = {}
    for i, (kind, edit, _, _) in enumerate(cases):
        hit = sims[i] >= threshold
        guarded = hit and guard[i]
        final = guarded and (cut is None or scores[i] >= cut)
        for name in (f"{kind}/{edit}", f"{kind}/all"):
            c = counts.setdefault(name, [0, 0, 0, 0])
            for j, v in enumerate((1, hit, guarded, final)):
                c[j] += v
    return {
        name: {"pairs": n, "hit_rate": h / n, "hit_rate_guarded": g / n, "hit_rate_final": f / n}
        for name, (n, h, g, f) in sorted(counts.items())
    }


def build_setup(
    spec: str,
    pairs: Sequence[Pair],
    extra: Sequence[str],
    model: dict[str, Any] | None,
    *,
    content_words: bool | None = None,
) -> Setup:
    texts = [t for p in pairs for t in (p.a, p.b)] + list(extra)
    embedded = embed_texts(spec, texts)
    info = TextInfo.of(texts, with_words=model is not None)
    policy = default_guard_policy(spec)
    if content_words is not None:
        policy = GuardPolicy(content_words=content_words)
    return Setup(spec, embedded, info, policy, model)
