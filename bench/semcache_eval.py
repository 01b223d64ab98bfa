"""Precision and recall of the semantic cache on the development pairs.

    python -m bench.semcache_eval [--embedder hash] [--limit N] [--json out.json]

Pairs are split deterministically by sha256 of their ``id``: the threshold is
chosen on the "tune" half (lowest threshold whose precision with the guard
reaches ``--target-precision``) and every reported number comes from the
other, "report" half. An adversarial set is built from the report half's
positive pairs by changing a number, inserting a negation or swapping a name
in one text, so each adversarial pair is a known wrong hit.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cache.semantic.embedders import build_embedder
from cache.semantic.guard import GuardPolicy, TurnFacts, check_facts, turn_facts
from cache.semantic.vectors import Vector, dot

DEV_SET = Path(__file__).resolve().parent / "data" / "semcache_dev.jsonl.gz"
THRESHOLDS = [round(0.80 + 0.01 * i, 2) for i in range(20)] + [0.995]
EMBED_BATCH = 256


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    source: str
    a: str
    b: str
    label: int


@dataclass(frozen=True, slots=True)
class Scored:
    pair: Pair
    similarity: float
    guard_ok: bool
    noise: bool  # label 0, yet identical after case/punctuation/whitespace normalisation


@dataclass(frozen=True, slots=True)
class Row:
    threshold: float
    precision: float
    recall: float
    false_hit_rate: float
    precision_guarded: float
    recall_guarded: float
    false_hit_rate_guarded: float
    precision_guarded_clean: float


def id_rank(pair_id: str) -> int:
    """A stable pseudo-random rank of a pair, from its id alone."""
    return int.from_bytes(hashlib.sha256(pair_id.encode()).digest()[:8], "big")


def load_pairs(path: Path, limit: int | None) -> list[Pair]:
    """The pairs of ``path``; with ``limit``, the ``limit`` lowest-ranked ones."""
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            pairs.append(Pair(r["id"], r["source"], r["text_a"], r["text_b"], int(r["label"])))
    if limit is not None:
        pairs = sorted(pairs, key=lambda p: id_rank(p.id))[:limit]
    return pairs


def is_tune(pair: Pair) -> bool:
    """Whether ``pair`` is in the half used to choose the threshold."""
    return id_rank("split:" + pair.id) % 2 == 0


_AUX = re.compile(
    r"\b(is|are|was|were|do|does|did|can|could|should|would|will|has|have)\b", re.IGNORECASE
)
_DIGITS = re.compile(r"\d+")
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]+\b")
_NEG = re.compile(r"\b(not|no|never|without)\b|n't", re.IGNORECASE)


def mutate(text: str) -> tuple[str, str] | None:
    """``text`` with one answer-changing edit and the edit's kind, or None."""
    if m := _DIGITS.search(text):
        return text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :], "number"
    if m := _NAME.search(text):
        other = "Germany" if m.group() != "Germany" else "Brazil"
        return text[: m.start()] + other + text[m.end() :], "name"
    if _NEG.search(text) is None and (m := _AUX.search(text)):
        return text[: m.end()] + " not" + text[m.end() :], "negation"
    return None


_LONG_WORD = re.compile(r"\b[a-z]{7,}\b")


def near_duplicates(text: str) -> list[tuple[str, str]]:
    """Rewrites of ``text`` that ask the same thing, each with its kind."""
    out = [
        (re.sub(r"[?.!,;:]", "", text).lower(), "case+punct"),
        ("  ".join(text.split()) + " ", "whitespace"),
    ]
    if m := _LONG_WORD.search(text):
        w = m.group()
        out.append((text[: m.start()] + w[:3] + w[4] + w[3] + w[5:] + text[m.end() :], "typo"))
    return [(t, kind) for t, kind in out if t != text]


async def embed_all(spec: str, texts: list[str]) -> tuple[dict[str, Vector], float]:
    """Vectors of ``texts`` by embedder ``spec`` and seconds per text."""
    embedder = build_embedder(spec)
    unique = list(dict.fromkeys(texts))
    start = time.perf_counter()
    vectors: dict[str, Vector] = {}
    for i in range(0, len(unique), EMBED_BATCH):
        batch = unique[i : i + EMBED_BATCH]
        vectors.update(zip(batch, await embedder.embed(batch), strict=True))
    return vectors, (time.perf_counter() - start) / max(1, len(unique))


def score(
    pairs: Iterable[Pair],
    vectors: dict[str, Vector],
    facts: dict[str, TurnFacts],
    policy: GuardPolicy,
) -> list[Scored]:
    """Similarity and guard verdict of each pair."""
    return [
        Scored(
            p,
            dot(vectors[p.a], vectors[p.b]),
            check_facts(facts[p.a], facts[p.b], policy=policy).allowed,
            p.label == 0 and facts[p.a].normal == facts[p.b].normal,
        )
        for p in pairs
    ]


def table(scored: Sequence[Scored]) -> list[Row]:
    """Precision, recall and false-hit rate per threshold, without and with the guard."""
    positives = sum(s.pair.label for s in scored) or 1
    negatives = sum(1 - s.pair.label for s in scored) or 1
    rows = []
    for t in THRESHOLDS:
        hits = [s for s in scored if s.similarity >= t]
        guarded = [s for s in hits if s.guard_ok]
        rows.append(
            Row(
                t,
                _ratio(sum(s.pair.label for s in hits), len(hits)),
                sum(s.pair.label for s in hits) / positives,
                sum(1 - s.pair.label for s in hits) / negatives,
                _ratio(sum(s.pair.label for s in guarded), len(guarded)),
                sum(s.pair.label for s in guarded) / positives,
                sum(1 - s.pair.label for s in guarded) / negatives,
                _ratio(sum(s.pair.label for s in guarded), sum(1 for s in guarded if not s.noise)),
            )
        )
    return rows


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def choose(rows: Sequence[Row], target: float) -> float:
    """Lowest threshold whose guarded precision, label noise aside, reaches ``target``.

    Precision is over all hits at or above the threshold. Label noise: pairs
    labelled different that are identical after normalisation.
    """
    for row in rows:
        if row.precision_guarded_clean >= target:
            return row.threshold
    return rows[-1].threshold


def adversarial_pairs(pairs: Iterable[Pair]) -> list[tuple[str, str, str, str]]:
    """(set, edit kind, text, edited text) for each positive pair.

    Known-wrong sets: ``copy`` pairs a text with its own mutation (the hardest
    case for a lexical embedding); ``pair`` pairs text_a with the mutated
    text_b. Known-right set ``dup``: text_a against a rewrite of itself that
    asks the same thing (case and punctuation, whitespace, a swapped letter).
    """
    out: list[tuple[str, str, str, str]] = []
    for p in pairs:
        out.extend(("dup", kind, p.a, text) for text, kind in near_duplicates(p.a))
        for kind, base, other in (("copy", p.a, p.a), ("pair", p.a, p.b)):
            mutated = mutate(other)
            if mutated is not None and mutated[0] != base:
                out.append((kind, mutated[1], base, mutated[0]))
    return out


def adversarial(
    cases: Iterable[tuple[str, str, str, str]],
    vectors: dict[str, Vector],
    threshold: float,
    policy: GuardPolicy,
) -> dict[str, dict[str, float]]:
    """Hit rate at ``threshold`` by set and edit kind (a false-hit rate except for ``dup``)."""
    counts: dict[str, list[int]] = {}
    for kind, edit, base, text in cases:
        hit = dot(vectors[base], vectors[text]) >= threshold
        guarded = hit and check_facts(turn_facts(base), turn_facts(text), policy=policy).allowed
        for name in (f"{kind}/{edit}", f"{kind}/all"):
            c = counts.setdefault(name, [0, 0, 0])
            c[0] += 1
            c[1] += hit
            c[2] += guarded
    return {
        name: {"pairs": n, "hit_rate": h / n, "hit_rate_guarded": g / n}
        for name, (n, h, g) in sorted(counts.items())
    }


def by_source(scored: Sequence[Scored], threshold: float) -> dict[str, dict[str, float]]:
    """Guarded precision, recall and false-hit rate per data source at ``threshold``."""
    out = {}
    for source in sorted({s.pair.source for s in scored}):
        rows = [s for s in scored if s.pair.source == source]
        hits = [s for s in rows if s.similarity >= threshold and s.guard_ok]
        pos = sum(s.pair.label for s in rows)
        neg = len(rows) - pos
        tp = sum(s.pair.label for s in hits)
        out[source] = {
            "pairs": len(rows),
            "precision_guarded": _ratio(tp, len(hits)),
            "recall_guarded": tp / pos if pos else 0.0,
            "false_hit_rate_guarded": (len(hits) - tp) / neg if neg else 0.0,
        }
    return out


def _print_table(rows: Sequence[Row]) -> None:
    print(
        f"{'thr':>6} | {'prec':>6} {'recall':>6} {'FHR':>7} | "
        f"{'prec+g':>6} {'rec+g':>6} {'FHR+g':>7} {'p+g cln':>7}"
    )
    for r in rows:
        print(
            f"{r.threshold:>6.3f} | {r.precision:>6.4f} {r.recall:>6.4f} {r.false_hit_rate:>7.5f} | "
            f"{r.precision_guarded:>6.4f} {r.recall_guarded:>6.4f} {r.false_hit_rate_guarded:>7.5f} "
            f"{r.precision_guarded_clean:>7.4f}"
        )


async def run(args: argparse.Namespace) -> dict[str, object]:
    """The whole evaluation; returns what ``--json`` writes."""
    started = time.perf_counter()
    pairs = load_pairs(Path(args.data), args.limit)
    tune = [p for p in pairs if is_tune(p)]
    report = [p for p in pairs if not is_tune(p)]
    cases = adversarial_pairs(p for p in report if p.label == 1)
    texts = [t for p in pairs for t in (p.a, p.b)] + [c[3] for c in cases]
    vectors, per_text_s = await embed_all(args.embedder, texts)
    facts = {t: turn_facts(t) for t in dict.fromkeys(t for p in pairs for t in (p.a, p.b))}
    policy = GuardPolicy(content_words=args.content_words)
    tune_rows = table(score(tune, vectors, facts, policy))
    scored = score(report, vectors, facts, policy)
    report_rows = table(scored)
    chosen = choose(tune_rows, args.target_precision)
    print(
        f"embedder={args.embedder} guard={policy} pairs={len(pairs)} "
        f"tune={len(tune)} report={len(report)}"
    )
    print(f"embedding: {per_text_s * 1e6:.0f} us per text")
    print("\ntune half")
    _print_table(tune_rows)
    print(f"\nreport half (threshold chosen on the tune half: {chosen})")
    _print_table(report_rows)
    print(f"\nper source at {chosen} (with guard):")
    sources = by_source(scored, chosen)
    for name, values in sources.items():
        print(f"  {name:32} " + " ".join(f"{k}={v:.4f}" for k, v in values.items() if k != "pairs"))
    adv = adversarial(cases, vectors, chosen, policy)
    print(f"\nedited pairs at {chosen} (copy/*, pair/*: known wrong; dup/*: known right):")
    for name, values in adv.items():
        print(
            f"  {name:16} n={int(values['pairs']):6d} hit rate "
            f"{values['hit_rate']:.4f} without guard, "
            f"{values['hit_rate_guarded']:.4f} with guard"
        )
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.1f} s")
    return {
        "embedder": args.embedder,
        "guard_content_words": args.content_words,
        "pairs": len(pairs),
        "chosen_threshold": chosen,
        "target_precision": args.target_precision,
        "embed_us_per_text": per_text_s * 1e6,
        "tune": [_row_dict(r) for r in tune_rows],
        "report": [_row_dict(r) for r in report_rows],
        "by_source": sources,
        "adversarial": adv,
        "seconds": elapsed,
    }


def _row_dict(row: Row) -> dict[str, float]:
    return {name: getattr(row, name) for name in Row.__slots__}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--embedder", default="hash")
    parser.add_argument("--limit", type=int, default=None, help="use the N lowest-ranked pairs")
    parser.add_argument("--data", default=str(DEV_SET))
    parser.add_argument("--target-precision", type=float, default=0.98)
    parser.add_argument(
        "--content-words",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="guard also requires the same content words (the hash embedder's default)",
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
