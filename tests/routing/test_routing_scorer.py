"""The shipped router: its files, its scores, its reasons, and that the fit reproduces it."""

from __future__ import annotations

import filecmp
import itertools
import json
from pathlib import Path

import pytest

from routing.features import FEATURE_NAMES, embedding_text, features, parts_of
from routing.fit import main as fit_main
from routing.model import DEFAULT_QUALITY_TARGET, EXEMPLAR_NOTES, EXEMPLAR_VECTORS, WEIGHTS_FILE
from routing.scorer import Scorer

PACKAGE = Path(__file__).resolve().parents[2] / "routing"


def user(text: str, **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


def test_scores_are_deterministic_in_range_and_explained(scorer: Scorer) -> None:
    for body in (user("hi"), user("Prove that there are infinitely many primes.")):
        first = scorer.score(body)
        assert first == scorer.score(body)
        assert 0.0 < first.value < 1.0
        assert 1 <= len(first.reasons) <= 3
        assert first.reasons[-1].startswith('like "')  # the nearest training prompt


def test_no_reason_mentions_code_for_a_prompt_without_code(scorer: Scorer) -> None:
    plain = [
        "Hi! What's the capital of Italy? (2)",
        "What year did World War II end?",
        "thanks, that's all for today",
        "Give me a synonym for 'happy'.",
    ]
    for text in plain:
        reasons = scorer.score(user(text)).reasons
        assert not any("code" in r for r in reasons[:-1]), (text, reasons)


def test_a_code_block_tools_and_history_raise_the_score(scorer: Scorer) -> None:
    base = scorer.score(user("Summarize our discussion.")).value
    history = [
        {"role": "user", "content": "Let's plan the migration. " * 40},
        {"role": "assistant", "content": "Here is a plan. " * 60},
    ]
    richer = [
        user("Summarize our discussion.", tools=[{"type": "function", "function": {"name": "f"}}]),
        {"messages": [*history, {"role": "user", "content": "Summarize our discussion."}]},
        user("Summarize our discussion.\n```python\nprint('x')\n```"),
    ]
    for body in richer:
        assert scorer.score(body).value > base


def test_long_prompts_embed_a_bounded_window() -> None:
    long_turn = "word " * 50_000
    parts = parts_of(user(long_turn))
    assert len(embedding_text(parts)) <= 1_000
    assert features(parts)[FEATURE_NAMES.index("last_len")] == 1.0
    with_system = parts_of(
        {"messages": [{"role": "system", "content": "S" * 5000}, {"role": "user", "content": "hi"}]}
    )
    assert embedding_text(with_system) == "hi"
    assert features(with_system)[FEATURE_NAMES.index("context_len")] == 0.0


def test_weights_file_carries_the_knob_thresholds_and_validation() -> None:
    weights = json.loads((PACKAGE / WEIGHTS_FILE).read_text())
    points = weights["operating_points"]
    targets = [p["quality_target"] for p in points]
    assert DEFAULT_QUALITY_TARGET in targets and targets == sorted(targets)
    for lower, higher in itertools.pairwise(points):
        # A stricter target never sends more traffic to a cheaper tier.
        assert higher["small_max"] <= lower["small_max"]
        assert higher["medium_max"] <= lower["medium_max"]
        assert higher["quality_kept"] >= higher["quality_target"] - 1e-9
    meta = weights["metadata"]
    assert meta["selection"]["chosen"]
    for table in (meta["validation_by_source"], meta["validation_by_family"]):
        assert all(set(row) == {"random", "length", "router"} for row in table["rows"].values())


def test_the_fit_reproduces_the_shipped_model_files(tmp_path: Path) -> None:
    assert fit_main(["--out", str(tmp_path)]) == 0
    for name in (WEIGHTS_FILE, EXEMPLAR_VECTORS, EXEMPLAR_NOTES):
        assert filecmp.cmp(tmp_path / name, PACKAGE / name, shallow=False), name
