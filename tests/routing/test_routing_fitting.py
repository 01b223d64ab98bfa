"""The fit's parts as pure functions: targets, APGR, the models, calibration, the choice."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from routing.calibrate import TARGETS, operating_points, outcome
from routing.candidates import ARENA_WEIGHT, QUOTED_PER_FAMILY, Result, Spec
from routing.dataset import (
    ALPACA,
    ALPACA_CEILING,
    ARENA,
    MATH,
    MMLU,
    example_of,
    family_of,
    ranks,
    targets,
)
from routing.evaluate import apgr, auc, mean_and_error
from routing.fit import choose, snippet
from routing.learn import NeighbourIndex, fit_linear
from routing.model import load_model
from routing.tiers import Thresholds


def row(source: str, **extra: object) -> dict[str, object]:
    return {
        "id": f"{source}-{len(extra)}",
        "source": source,
        "prompt": [{"role": "user", "content": "q"}],
        **extra,
    }


def test_targets_rank_within_each_family_and_arena_is_hard() -> None:
    examples = [
        example_of(row("hendrycks_math/test", difficulty_level=1)),
        example_of(row("hendrycks_math/test", difficulty_level=5)),
        example_of(row("hendrycks_math/test", difficulty_level=5)),
        example_of(row("arena_hard_v0.1")),
        example_of(
            row(
                "alpaca_eval/koala",
                outcomes={"gpt-3.5-turbo-1106": 0.5, "claude-2": 0.1, "gpt4_1106_preview": 0.5},
            )
        ),
        example_of(
            row(
                "alpaca_eval/koala",
                outcomes={"gpt-3.5-turbo-1106": 0.0, "claude-2": 0.1, "gpt4_1106_preview": 0.5},
            )
        ),
    ]
    t = targets(examples)
    assert t[0] == pytest.approx(1 / 6)  # lowest of three, mid-rank 0.5 / 3
    assert t[1] == t[2] == pytest.approx(4 / 6)  # tied: share the mid-rank
    assert t[3] == 1.0
    assert t[4] == pytest.approx(0.25 * ALPACA_CEILING) and t[5] == pytest.approx(
        0.75 * ALPACA_CEILING
    )


def test_mmlu_rows_get_tier_qualities_and_the_pair_gap() -> None:
    outcomes = {
        "Meta-Llama-3.1-8B-Instruct": 0,
        "gemini-1.5-flash-002": 1,
        "Meta-Llama-3.1-70B-Instruct": 1,
        "gemini-1.5-pro-002": 1,
        "Mistral-7B-Instruct-v0.2": 0,  # not a tier's model: ignored
    }
    e = example_of(row("mmlu_pro/stemez", outcomes=outcomes))
    assert e.qualities == pytest.approx((0.5, 1.0, 1.0))
    assert e.raw_measure == pytest.approx(0.5)  # large right, small wrong in 1 of 2 pairs
    assert e.label == "small models 1/2 right"


def test_ranks_are_mid_ranks() -> None:
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [0.75, 0.125, 0.75, 0.375]


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([3, 2, 1, 0], 0.875),  # the one prompt with a gain goes first
        ([0, 1, 2, 3], 0.125),  # ... or last
        ([1, 1, 1, 1], 0.5),  # ties share the gain: a constant score is random
    ],
)
def test_apgr(scores: list[float], expected: float) -> None:
    assert apgr(scores, [0.0] * 4, [1.0, 0.0, 0.0, 0.0]) == pytest.approx(expected)


def test_apgr_of_random_scores_is_near_one_half() -> None:
    rng = np.random.default_rng(0)
    cheap = rng.random(20_000)
    strong = cheap + rng.random(20_000)
    assert apgr(rng.random(20_000), cheap, strong) == pytest.approx(0.5, abs=0.01)


def test_auc_and_mean_error() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    mean, error = mean_and_error([1.0, 3.0])
    assert mean == 2.0 and error == pytest.approx(1.0)


def test_linear_fit_learns_the_direction_and_group_levels() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 3))
    groups = ["a"] * 1000 + ["b"] * 1000
    level = np.array([-1.0] * 1000 + [1.0] * 1000)
    p = 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1] + level)))
    model = fit_linear(x, p, groups, sample_weights=np.ones(2000), l2=0.01)
    assert model.weights[0] == pytest.approx(2.0, abs=0.1)
    assert model.weights[1] == pytest.approx(-1.0, abs=0.1)
    assert model.intercepts["b"] - model.intercepts["a"] == pytest.approx(2.0, abs=0.1)


def test_neighbour_estimates_weigh_the_most_similar() -> None:
    vectors = np.eye(4, dtype=np.float32)
    index = NeighbourIndex(vectors, np.array([0.0, 1.0, 1.0, 1.0]))
    query = np.array([1.0, 0.1, 0.0, 0.0], dtype=np.float32)
    query /= np.linalg.norm(query)
    found = index.nearest(query, 2)
    assert list(found.index) == [0, 1]
    assert index.estimate(found, temperature=10.0) < 0.01
    batch = index.estimate_many(query[None, :], k=2, temperature=10.0)
    assert batch[0] == pytest.approx(index.estimate(found, temperature=10.0))


def test_operating_points_keep_the_target_at_least_cost() -> None:
    rng = np.random.default_rng(2)
    hard = rng.random(4000)
    # The small tier fails the hard prompts, the medium tier the hardest, large none.
    q = np.stack([hard < 0.5, hard < 0.8, np.ones_like(hard, dtype=bool)], axis=1).astype(float)
    points = operating_points(list(hard), [tuple(r) for r in q])
    assert [p.quality_target for p in points] == list(TARGETS)
    for p in points:
        shares, kept, _ = outcome(p.thresholds, hard, q)
        assert kept >= p.quality_target - 1e-9
        assert shares == pytest.approx(p.shares)
    perfect = points[-1]  # 1.00 with a perfect score: small below 0.5, medium to 0.8
    assert perfect.thresholds.small_max == pytest.approx(0.5, abs=0.01)
    assert perfect.thresholds.medium_max == pytest.approx(0.8, abs=0.01)


def test_thresholds_pick_tiers() -> None:
    th = Thresholds(0.3, 0.6)
    assert [th.tier(s) for s in (0.1, 0.3, 0.59, 0.6)] == ["small", "medium", "medium", "large"]


def _result(kind: str, beta: float, k: int, values: list[float]) -> Result:
    return Result(Spec(kind, beta, k), {f"s{i}": v for i, v in enumerate(values)})  # type: ignore[arg-type]


def test_choice_keeps_linear_unless_neighbours_are_clearly_better() -> None:
    linear = _result("linear", 0.0, 0, [0.50, 0.52, 0.51, 0.53])
    close = _result("neighbours", 0.5, 50, [0.51, 0.52, 0.50, 0.54])
    chosen, info = choose([linear, close])
    assert chosen.spec.kind == "linear" and info["chosen"] == linear.spec.name
    clearly = _result("neighbours", 0.5, 50, [0.55, 0.57, 0.56, 0.58])
    assert choose([linear, clearly])[0].spec.kind == "neighbours"


def test_choice_takes_the_strongest_length_prior_not_clearly_worse() -> None:
    best = _result("linear", 0.0, 0, [0.52, 0.53, 0.51, 0.52])
    near = _result("linear", 1.0, 0, [0.52, 0.52, 0.51, 0.525])
    worse = _result("linear", 1.5, 0, [0.40, 0.41, 0.40, 0.42])
    assert choose([best, near, worse])[0].spec.beta == 1.0


def test_snippets_are_header_safe() -> None:
    text = snippet('Café "quoted"\n\tline\\ ' + "x" * 100)
    assert text.isascii() and '"' not in text and "\\" not in text and len(text) <= 60
    assert text.endswith("...")


def test_explanations_quote_a_bounded_balanced_sample_of_each_family() -> None:
    model = load_model()
    families = Counter(family_of(e.source) for e in model.exemplars)
    # Every family is quoted, none dominates, and the Arena-Hard label (always "hard prompt")
    # gets half a family's share.
    assert set(families) == {ALPACA, ARENA, MATH, MMLU}
    for family, count in families.items():
        expected = QUOTED_PER_FAMILY * (ARENA_WEIGHT if family == ARENA else 1.0)
        assert 0.85 * expected <= count <= 1.15 * expected, (family, count)
    # The nearest-prompt pass on every routed request reads this matrix (float32 in memory).
    assert model.vectors.nbytes <= 1.2 * 2**20
    assert len(model.vectors) == len(model.exemplars)
