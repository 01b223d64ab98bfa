"""Model choice: capability filters, cheapest choice, tiers, modes, stickiness, fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from routing.select import (
    Candidate,
    Needs,
    StickyInfo,
    expected_cost_micro,
    needs_of,
    select_model,
    why_not,
    with_availability,
)
from routing.tiers import Score, Thresholds

TH = Thresholds(small_max=0.4, medium_max=0.7)
EASY = Score(0.18, ("short", "no code"))
MID = Score(0.5, ("code",))
HARD = Score(0.9, ("long prompt", "math"))

Make = Callable[..., Candidate]


@pytest.fixture
def pool(make_candidate: Make) -> list[Candidate]:
    return [
        make_candidate("gpt-4o-mini", "small", input_price="0.15", output_price="0.60"),
        make_candidate(
            "claude-haiku", "small", provider="anthropic", input_price="0.80", output_price="4"
        ),
        make_candidate("gpt-4.1-mini", "medium", input_price="0.40", output_price="1.60"),
        make_candidate(
            "claude-sonnet", "large", provider="anthropic", input_price="3", output_price="15"
        ),
        make_candidate("gpt-4o", "large", input_price="2.50", output_price="10"),
    ]


def choose(pool: list[Candidate], score: Score = EASY, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "score": score,
        "candidates": pool,
        "needs": Needs(prompt_tokens=1000),
        "thresholds": TH,
        "mode": "auto-only",
        "requested": None,
        "sticky": None,
        "expected_output_tokens": 200,
    }
    args.update(kw)
    return select_model(**args)


def test_thresholds_map_score_to_least_tier() -> None:
    assert [TH.tier(s) for s in (0.0, 0.39, 0.4, 0.69, 0.7, 1.0)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]


def test_cheapest_capable_model_of_the_least_tier_with_readable_reason(
    pool: list[Candidate],
) -> None:
    d = choose(pool)
    assert d.model.name == "gpt-4o-mini"
    assert d.tier == "small"
    assert d.reason == "score 0.18 (short, no code) -> small: gpt-4o-mini"
    assert d.reason.isascii()
    assert choose(pool, MID).model.name == "gpt-4.1-mini"
    assert choose(pool, HARD).model.name == "gpt-4o"


def test_expected_cost_is_exact_micro_dollars(pool: list[Candidate]) -> None:
    gpt4o = pool[4]
    assert expected_cost_micro(gpt4o, prompt_tokens=1000, output_tokens=100) == 3500
    # 1000 prompt tokens of which 600 cached at half price (1.25): 400*2.5 + 600*1.25 = 1750
    assert (
        expected_cost_micro(gpt4o, prompt_tokens=1000, output_tokens=0, cached_tokens=600) == 1750
    )


def test_cheapest_uses_expected_output(make_candidate: Make) -> None:
    cheap_in = make_candidate("a", "small", input_price="0.1", output_price="5")
    cheap_out = make_candidate("b", "small", input_price="1", output_price="0.5")
    assert choose([cheap_in, cheap_out], expected_output_tokens=10).model.name == "a"
    assert choose([cheap_in, cheap_out], expected_output_tokens=5000).model.name == "b"


@pytest.mark.parametrize(
    ("needs", "kwargs", "reason"),
    [
        (Needs(prompt_tokens=9000), {"context_window": 8000}, "context window too small"),
        (
            Needs(prompt_tokens=7000, max_tokens=2000),
            {"context_window": 8192},
            "context window too small",
        ),
        (Needs(prompt_tokens=10, max_tokens=5000), {"max_output": 4096}, "max output too small"),
        (Needs(prompt_tokens=10, tools=True), {"tools": False}, "no tools"),
        (Needs(prompt_tokens=10, images=True), {"vision": False}, "no vision"),
        (Needs(prompt_tokens=10, json_schema=True), {"json_schema": False}, "no json schema"),
        (Needs(prompt_tokens=10, reasoning=True), {"reasoning": False}, "no reasoning"),
        (Needs(prompt_tokens=10), {"available": False}, "circuit open"),
    ],
)
def test_each_constraint_filters_the_cheap_model_out(
    make_candidate: Make, needs: Needs, kwargs: dict[str, Any], reason: str
) -> None:
    limited = make_candidate("limited", "small", input_price="0.1", **kwargs)
    able = make_candidate(
        "able",
        "small",
        input_price="0.9",
        context_window=200_000,
        max_output=64_000,
        reasoning=True,
    )
    assert why_not(limited, needs) == reason
    assert why_not(able, needs) is None
    assert choose([limited, able], needs=needs).model.name == "able"


def test_goes_up_a_tier_when_the_least_tier_cannot_serve(make_candidate: Make) -> None:
    small = make_candidate("small-no-tools", "small", tools=False)
    medium = make_candidate("medium", "medium", input_price="2")
    large = make_candidate("large", "large", input_price="3")
    d = choose([small, medium, large], needs=Needs(prompt_tokens=10, tools=True))
    assert d.model.name == "medium"
    assert d.tier == "medium"
    assert "(small tier unavailable)" in d.reason
    assert [c.name for c in d.fallbacks] == ["large"]


def test_no_capable_candidate_raises(make_candidate: Make) -> None:
    with pytest.raises(LookupError):
        choose([make_candidate("x", "large", available=False)])


def test_fallbacks_same_tier_other_provider_first_then_up(make_candidate: Make) -> None:
    a = make_candidate("a", "small", input_price="0.1")
    a2 = make_candidate("a2", "small", input_price="0.2")
    b = make_candidate("b", "small", provider="anthropic", input_price="0.9")
    m = make_candidate("m", "medium", input_price="0.3")
    big = make_candidate("big", "large", input_price="5")
    d = choose([big, m, b, a2, a])
    assert d.model.name == "a"
    assert [c.name for c in d.fallbacks] == ["b", "a2", "m", "big"]


def test_mode_off_and_auto_only_serve_requested_model(pool: list[Candidate]) -> None:
    gpt4o = pool[4]
    for mode in ("off", "auto-only"):
        d = choose(pool, mode=mode, requested=gpt4o)
        assert d.model is gpt4o
        assert d.reason == f"mode {mode}: gpt-4o as requested"
    # "auto" (requested None) is routed in every mode
    assert choose(pool, mode="off").model.name == "gpt-4o-mini"


def test_downgrade_replaces_requested_when_score_allows(pool: list[Candidate]) -> None:
    d = choose(pool, EASY, mode="downgrade", requested=pool[4])
    assert d.model.name == "gpt-4o-mini"


def test_downgrade_never_goes_above_requested_tier(pool: list[Candidate]) -> None:
    mini = pool[2]  # medium
    d = choose(pool, HARD, mode="downgrade", requested=mini)
    assert d.model is mini
    assert "keeps gpt-4.1-mini" in d.reason
    # small tier missing: stays within tiers up to the requested one
    d = choose([pool[2], pool[4]], EASY, mode="downgrade", requested=pool[2])
    assert d.model.name == "gpt-4.1-mini"
    assert all(c.tier != "large" for c in d.fallbacks)


def test_downgrade_keeps_requested_when_nothing_cheaper(make_candidate: Make) -> None:
    req = make_candidate("req", "medium", input_price="0.1", output_price="0.1")
    other = make_candidate("other", "small", input_price="1")
    d = choose([req, other], EASY, mode="downgrade", requested=req)
    assert d.model is req


def test_sticky_stays_when_cached_prefix_is_cheaper(make_candidate: Make) -> None:
    cheap = make_candidate("cheap", "small", input_price="1.0", output_price="1")
    prev = make_candidate(
        "prev", "small", input_price="1.2", cached_input_price="0.1", output_price="1"
    )
    sticky = StickyInfo("prev", shared_prefix_tokens=9000)
    d = choose([cheap, prev], needs=Needs(prompt_tokens=10_000), sticky=sticky)
    assert d.model.name == "prev"
    assert "stays on prev: cached prefix $0.0023 <= $0.0102 on cheap" in d.reason
    assert [c.name for c in d.fallbacks] == ["cheap"]


def test_sticky_moves_when_moving_is_cheaper(make_candidate: Make) -> None:
    cheap = make_candidate("cheap", "small", input_price="0.1", output_price="1")
    prev = make_candidate(
        "prev", "small", input_price="5", cached_input_price="2.5", output_price="1"
    )
    d = choose([cheap, prev], needs=Needs(prompt_tokens=10_000), sticky=StickyInfo("prev", 9000))
    assert d.model.name == "cheap"
    assert "stays" not in d.reason


def test_sticky_ignored_when_previous_model_is_below_least_tier(make_candidate: Make) -> None:
    small = make_candidate("small", "small", input_price="0.01", output_price="0.01")
    large = make_candidate("large", "large", input_price="3")
    d = choose([small, large], HARD, sticky=StickyInfo("small", 100_000))
    assert d.model.name == "large"


def test_needs_of_reads_the_body() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "reasoning_effort": "high",
        "max_tokens": 300,
    }
    assert needs_of(body, prompt_tokens=42) == Needs(
        prompt_tokens=42, max_tokens=300, tools=True, images=True, json_schema=True, reasoning=True
    )
    assert needs_of({"messages": [{"role": "user", "content": "hi"}]}, prompt_tokens=1) == Needs(1)
    assert (
        needs_of({"response_format": {"type": "json_object"}}, prompt_tokens=1).json_schema is False
    )


def test_with_availability_marks_open_circuits(pool: list[Candidate]) -> None:
    marked = with_availability(pool, available=lambda c: c.name != "gpt-4o-mini")
    assert [c.available for c in marked] == [False, True, True, True, True]
    assert choose(marked).model.name == "claude-haiku"


def test_downgrade_reason_when_requested_is_cheapest(make_candidate: Make) -> None:
    req = make_candidate("req", "small", input_price="0.1", output_price="0.1")
    other = make_candidate("other", "small", input_price="1")
    d = choose([req, other], EASY, mode="downgrade", requested=req)
    assert d.reason == "score 0.18 (short, no code) -> small: req (requested; nothing cheaper)"
    assert [c.name for c in d.fallbacks] == ["other"]
