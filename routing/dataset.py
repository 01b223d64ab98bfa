"""The router's training and validation data: labelled prompts and what each label means.

Four kinds of rows ship in ``routing/data/`` (origins in its ``SOURCES.md``):

* AlpacaEval: a judge's preference for each of 56 models' answers over a
  GPT-4-turbo reference answer;
* MMLU-Pro: whether each of 8 models answered a STEM question right;
* MATH: the problem's difficulty level, 1 to 5;
* Arena-Hard: prompts chosen from real traffic for being hard.

Every row gets a fit **target** in [0, 1]: how much worse the cheap tier's
answer is than the strong tier's, ranked within its family (a family's raw
measure has its own scale: a judge's preference, a share of right answers, a
level). Rows with measured outcomes also get the **tier qualities** that
validation and threshold calibration use.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
DATA_FILES = ("routing_dev.jsonl.gz", "mmlu_pro_outcomes.jsonl.gz")

ALPACA, ARENA, MATH, MMLU = "alpaca_eval", "arena_hard_v0.1", "hendrycks_math", "mmlu_pro"
# Families fitted with a shared level: conversational prompts, easy and hard.
GROUP_OF = {ALPACA: "chat", ARENA: "chat", MATH: "math", MMLU: "knowledge"}

# Representative models of each tier, by capability.
ALPACA_TIERS: Mapping[str, tuple[str, ...]] = {
    "small": (
        "gpt-3.5-turbo-1106",
        "gpt-3.5-turbo-1106_concise",
        "gpt-3.5-turbo-1106_verbose",
        "gpt-3.5-turbo-0301",
    ),
    "medium": (
        "claude-2.1",
        "claude-2",
        "claude-instant-1.2",
        "Mixtral-8x7B-Instruct-v0.1_concise",
    ),
    "large": ("gpt4_1106_preview",),
}
# One or two models per price class that are still realistic choices for that tier;
# the older open models (Mistral-7B, Phi-3-mini, Mixtral, Qwen1.5) are left out.
MMLU_TIERS: Mapping[str, tuple[str, ...]] = {
    "small": ("Meta-Llama-3.1-8B-Instruct", "gemini-1.5-flash-002"),
    "medium": ("Meta-Llama-3.1-70B-Instruct",),
    "large": ("gemini-1.5-pro-002",),
}
TIERS = ("small", "medium", "large")
# AlpacaEval targets fill [0, ALPACA_CEILING] by rank; Arena-Hard prompts, all hard, sit at 1.
ALPACA_CEILING = 0.8


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled prompt."""

    id: str
    source: str
    family: str
    messages: Sequence[Mapping[str, Any]]
    raw_measure: float | None
    """The family's own difficulty measure (higher = cheap tier worse); None if unlabelled."""
    qualities: tuple[float, float, float] | None
    """Measured quality of the small, medium and large tier's answers, if known."""
    label: str
    """A few words on the row's outcome, for explanations."""

    @property
    def group(self) -> str:
        """The fit's level group: chat, math or knowledge."""
        return GROUP_OF[self.family]

    @property
    def last_user_text(self) -> str:
        """The text of the prompt's last user message."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


def family_of(source: str) -> str:
    """``alpaca_eval/koala`` -> ``alpaca_eval``; ``hendrycks_math/test`` -> ``hendrycks_math``."""
    return source.split("/", 1)[0]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _tier_means(
    outcomes: Mapping[str, Any], tiers: Mapping[str, tuple[str, ...]]
) -> tuple[float, float, float] | None:
    means = [
        _mean([float(outcomes[m]) for m in tiers[t] if outcomes.get(m) is not None]) for t in TIERS
    ]
    if any(m is None for m in means):
        return None
    return (float(means[0] or 0.0), float(means[1] or 0.0), float(means[2] or 0.0))


def _mmlu_gap(outcomes: Mapping[str, Any]) -> float | None:
    """P(a large-tier model is right where a small-tier one is wrong), over model pairs."""
    pairs = [
        float(outcomes[big]) * (1.0 - float(outcomes[small]))
        for small in MMLU_TIERS["small"]
        for big in MMLU_TIERS["large"]
        if outcomes.get(small) is not None and outcomes.get(big) is not None
    ]
    return _mean(pairs)


def example_of(raw: Mapping[str, Any]) -> Example:
    """Interpret one data-set row."""
    source = str(raw["source"])
    family = family_of(source)
    outcomes = raw.get("outcomes") or {}
    measure: float | None
    qualities: tuple[float, float, float] | None = None
    if family == ALPACA:
        qualities = _tier_means(outcomes, ALPACA_TIERS)
        # How far the cheap answers fall short of a tie with the strong one.
        measure = None if qualities is None else 1.0 - min(1.0, qualities[0] / 0.5)
        label = (
            "no judgement" if qualities is None else f"cheap answer preferred {qualities[0]:.0%}"
        )
    elif family == MMLU:
        qualities = _tier_means(outcomes, MMLU_TIERS)
        measure = _mmlu_gap(outcomes)
        small = sum(int(outcomes.get(m) or 0) for m in MMLU_TIERS["small"])
        label = f"small models {small}/{len(MMLU_TIERS['small'])} right"
    elif family == MATH:
        level = raw.get("difficulty_level")
        measure = float(level) if isinstance(level, int) else None
        label = f"MATH level {level}"
    elif family == ARENA:
        measure, label = 1.0, "hard prompt"
    else:
        raise ValueError(f"unknown source {source!r}")
    return Example(
        id=str(raw["id"]),
        source=source,
        family=family,
        messages=tuple(raw["prompt"]),
        raw_measure=measure,
        qualities=qualities,
        label=label,
    )


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a (gzipped) JSON-lines file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_examples(paths: Sequence[Path] | None = None) -> list[Example]:
    """Every row of the data files, in file order."""
    files = paths or [DATA_DIR / name for name in DATA_FILES]
    return [example_of(raw) for path in files for raw in read_rows(path)]


def content_sha256(path: Path) -> str:
    """sha256 of a data file's content (decompressed), as ``SOURCES.md`` lists it."""
    data = path.read_bytes()
    return hashlib.sha256(gzip.decompress(data) if path.suffix == ".gz" else data).hexdigest()


def ranks(values: Sequence[float]) -> list[float]:
    """Mid-ranks scaled to (0, 1): ties share their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and values[order[j]] == values[order[i]]:
            j += 1
        mid = (i + j) / 2  # average of 0-based ranks i..j-1, plus 0.5
        for k in range(i, j):
            out[order[k]] = mid / len(values)
        i = j
    return out


def targets(examples: Sequence[Example]) -> list[float | None]:
    """Fit targets: each family's measure ranked within the family (Arena-Hard: 1)."""
    result: list[float | None] = [None] * len(examples)
    for family in (ALPACA, MATH, MMLU):
        index = [
            i for i, e in enumerate(examples) if e.family == family and e.raw_measure is not None
        ]
        scale = ALPACA_CEILING if family == ALPACA else 1.0
        for i, r in zip(index, ranks([examples[i].raw_measure or 0.0 for i in index]), strict=True):
            result[i] = r * scale
    for i, e in enumerate(examples):
        if e.family == ARENA:
            result[i] = 1.0
    return result


def fold_of(example_id: str, folds: int) -> int:
    """A fixed pseudo-random fold of a row, from its id alone."""
    return int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) % folds
