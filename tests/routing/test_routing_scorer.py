"""Complexity scoring: determinism, reasons, ordering of easy and hard prompts, the fit."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from routing.features import (
    BASE_FEATURE_NAMES,
    DOMAINS,
    FEATURE_NAMES,
    PER_DOMAIN_BASE_INDEX,
    base_features,
    domain_of,
    extract,
)
from routing.fit import (
    ARENA_SHARE,
    Row,
    auc,
    fit,
    is_held_out,
    label_of,
    main,
    sample_weights,
    target_of,
)
from routing.scorer import Thresholds, Weights, load_weights, score_request

DEV_DATA = Path(__file__).resolve().parents[2] / "routing" / "data" / "routing_dev.jsonl.gz"
WEIGHTS_FILE = Path(__file__).resolve().parents[2] / "routing" / "weights.json"


def user(text: str, **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def weights() -> Weights:
    return load_weights()


# Trivial asks the small tier must take. Short factual questions ("What is the
# capital of Japan?") are not among them: on AlpacaEval the strong model's answer
# is preferred on most what/who questions, so the scorer keeps them out of small.
EASY = [
    user("hi"),
    user("Translate 'good morning' into French."),
    user("Rewrite this sentence in the passive voice: The cat chased the mouse."),
]
HARD = [
    user(
        "Design a distributed rate limiter for a multi-region API gateway. Compare token "
        "bucket and sliding window approaches, discuss the trade-offs step by step, and "
        "you must handle clock skew, must not use a central database, and should include "
        "Python code:\n```python\nclass Limiter:\n    def allow(self, key): ...\n```"
    ),
    user(
        "Prove that for every integer $n \\ge 1$, $\\sum_{k=1}^{n} k^3 = \\left(\\frac{n(n+1)}{2}\\right)^2$, "
        "then derive a closed form for $\\sum_{k=1}^{n} k^4$ and explain each step."
    ),
    user(
        'Here is my stack trace:\nTraceback (most recent call last):\n  File "app.py", line 3\n'
        "KeyError: 'user'\nDebug this Flask function and refactor it to avoid the bug:\n"
        "def handler(request):\n    return db[request.json['user']]"
    ),
]


def test_scores_are_deterministic_and_in_range(weights: Weights) -> None:
    for body in EASY + HARD:
        first = score_request(body, weights=weights)
        assert first == score_request(body, weights=weights)
        assert 0.0 <= first.value <= 1.0
        assert 1 <= len(first.reasons) <= 3


def test_hard_prompts_score_higher_than_easy_ones(weights: Weights) -> None:
    easy = [score_request(b, weights=weights).value for b in EASY]
    hard = [score_request(b, weights=weights).value for b in HARD]
    assert max(easy) < min(hard)
    assert all(weights.thresholds.tier(s) == "small" for s in easy)
    assert all(weights.thresholds.tier(s) != "small" for s in hard)


def test_reasons_name_the_main_features(weights: Weights) -> None:
    assert "short" in score_request(user("hi"), weights=weights).reasons
    assert {"code", "code task", "code block"} & set(
        score_request(HARD[0], weights=weights).reasons
    )
    assert (
        "stack trace" in score_request(HARD[2], weights=weights).reasons
        or "code" in score_request(HARD[2], weights=weights).reasons
    )


def test_history_tools_and_output_size_raise_the_score(weights: Weights) -> None:
    base = score_request(user("Summarize our discussion."), weights=weights).value
    history = [
        {"role": "user", "content": "x" * 3000},
        {"role": "assistant", "content": "y" * 3000},
    ] * 4
    deep = {"messages": [*history, {"role": "user", "content": "Summarize our discussion."}]}
    tools = user(
        "Summarize our discussion.", tools=[{"type": "function", "function": {"name": "f"}}]
    )
    long_out = user("Summarize our discussion.", max_tokens=4000)
    for body in (deep, tools, long_out):
        assert score_request(body, weights=weights).value > base


def test_features_read_parts_and_scan_bounded_window() -> None:
    parts = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "```py\nx=1\n```"}]}]
    }
    x = dict(zip(FEATURE_NAMES, extract(parts), strict=True))
    assert x["code_fence"] == 1.0
    huge = user("word " * 100_000 + "Traceback (most recent call last)")
    y = dict(zip(FEATURE_NAMES, extract(huge), strict=True))
    assert y["last_len"] == 1.0
    assert y["stack_trace"] == 1.0  # the tail of a long turn is scanned
    assert (
        dict(zip(FEATURE_NAMES, extract(user("Привет, как дела?")), strict=True))["non_english"]
        > 0.5
    )


def test_thresholds_and_metadata_in_weights_file() -> None:
    data = json.loads(WEIGHTS_FILE.read_text())
    w = Weights.from_dict(data)
    assert isinstance(w.thresholds, Thresholds)
    assert 0 < w.thresholds.small_max <= w.thresholds.medium_max < 1
    meta = data["metadata"]
    plain = gzip.decompress(DEV_DATA.read_bytes())
    assert meta["data_sha256"] == hashlib.sha256(plain).hexdigest()
    assert "sha256(id)" in meta["split_rule"]
    assert 0.5 < meta["held_out"]["auc_not_cheap"] <= 1.0


def test_fit_reproduces_the_weights_file_exactly(tmp_path: Path) -> None:
    out = tmp_path / "weights.json"
    assert main(["--data", str(DEV_DATA), "--out", str(out)]) == 0
    assert out.read_bytes() == WEIGHTS_FILE.read_bytes()


def test_fit_uses_training_rows_only(tmp_path: Path) -> None:
    lines = gzip.decompress(DEV_DATA.read_bytes()).decode().splitlines()
    held = [ln for ln in lines if is_held_out(json.loads(ln)["id"])]
    train = [ln for ln in lines if not is_held_out(json.loads(ln)["id"])]
    # flipping every held-out prompt to an unrelated text must not move the weights
    scrambled = tmp_path / "scrambled.jsonl"
    flipped = []
    for ln in held:
        row = json.loads(ln)
        row["prompt"] = [{"role": "user", "content": "unrelated " + row["id"]}]
        flipped.append(json.dumps(row))
    scrambled.write_text("\n".join(train + flipped) + "\n")
    original = json.loads(WEIGHTS_FILE.read_text())
    refit = fit(scrambled)
    assert refit["bias"] == original["bias"]
    assert refit["features"] == original["features"]


def test_labels_and_split_rule() -> None:
    assert label_of({"source": "arena_hard_v0.1"}) is False
    assert label_of({"source": "hendrycks_math/test", "difficulty_level": 2}) is True
    assert label_of({"source": "hendrycks_math/test", "difficulty_level": 3}) is None
    assert label_of({"source": "hendrycks_math/test", "difficulty_level": 5}) is False
    alpaca = {"source": "alpaca_eval/oasst", "outcomes": {"gpt-3.5-turbo-1106": 0.3}}
    assert label_of(alpaca) is True
    share = sum(is_held_out(f"row-{i}") for i in range(10_000)) / 10_000
    assert 0.18 < share < 0.22


def test_auc_counts_ties_half() -> None:
    assert auc([0.1, 0.2, 0.3, 0.4], [False, False, True, True]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.9, 0.1], [False, True]) == 0.0


def test_domain_gate_and_per_domain_copies() -> None:
    math_q = user("Find $x$ if $2x + 3 = 11$.")
    word_problem = user("Tom has 12 apples and gives away 5. How many are left?")
    code_q = user("Why does this fail?\n```python\nprint(x[0])\n```")
    assert domain_of(base_features(math_q)) == "math"
    assert domain_of(base_features(word_problem)) == "math"
    assert domain_of(base_features(code_q)) == "code"
    assert domain_of(base_features(user("Tips for a job interview?"))) is None
    n_base, n_copies = len(BASE_FEATURE_NAMES), len(PER_DOMAIN_BASE_INDEX)
    assert len(FEATURE_NAMES) == n_base + len(DOMAINS) + len(DOMAINS) * n_copies
    for body, active in ((math_q, "math"), (code_q, "code"), (user("hi"), None)):
        x, base = extract(body), base_features(body)
        assert x[:n_base] == base
        for k, domain in enumerate(DOMAINS):
            assert x[n_base + k] == (1.0 if domain == active else 0.0)
            start = n_base + len(DOMAINS) + k * n_copies
            copies = x[start : start + n_copies]
            expected = [base[i] if domain == active else 0.0 for i in PER_DOMAIN_BASE_INDEX]
            assert list(copies) == expected


def _row(source: str, *, cheap: bool | None, outcomes: dict[str, float] | None = None) -> Row:
    return Row(
        id=f"{source}-{cheap}",
        source=source,
        body=user("x"),
        cheap_suffices=cheap,
        hard=cheap is False and not source.startswith("alpaca"),
        outcomes=outcomes or {},
        output_len_chars={},
    )


def test_fit_targets_are_soft_for_alpaca_and_sources_are_balanced() -> None:
    prefs = {
        "gpt-3.5-turbo-1106": 0.1,
        "gpt-3.5-turbo-1106_concise": 0.3,
        "gpt-3.5-turbo-1106_verbose": 0.2,
        "gpt-3.5-turbo-0301": 0.2,
    }
    alpaca = _row("alpaca_eval/oasst", cheap=False, outcomes=prefs)
    assert target_of(alpaca) == pytest.approx(1 - 0.2 / 0.5)
    assert target_of(_row("arena_hard_v0.1", cheap=False)) == 1.0
    assert target_of(_row("hendrycks_math/test", cheap=True)) == 0.0
    assert target_of(_row("hendrycks_math/test", cheap=None)) is None
    rows = [alpaca] * 2 + [_row("arena_hard_v0.1", cheap=False)] * 4
    rows += [_row("hendrycks_math/test", cheap=True)] * 6
    weights = sample_weights(rows)
    totals: dict[str, float] = {}
    for r, w in zip(rows, weights, strict=True):
        family = r.source.split("/")[0]
        totals[family] = totals.get(family, 0.0) + w
    assert totals["alpaca_eval"] == pytest.approx(totals["hendrycks_math"])
    assert totals["arena_hard_v0.1"] == pytest.approx(ARENA_SHARE * totals["alpaca_eval"])


def test_reasons_name_only_the_domain_the_request_is_in(weights: Weights) -> None:
    for body in EASY:
        reasons = score_request(body, weights=weights).reasons
        assert not {"math problem", "code task"} & set(reasons)
    assert "math problem" not in score_request(HARD[0], weights=weights).reasons


def test_shipped_weights_beat_a_random_router_on_held_out_rows() -> None:
    held = json.loads(WEIGHTS_FILE.read_text())["metadata"]["held_out"]
    points = {p["strong_share"]: p for p in held["curve"]}
    for share in (0.1, 0.3, 0.5):
        assert points[share]["recovered"] > points[share]["random"]
    assert held["auc_not_cheap_math_only"] > 0.65
