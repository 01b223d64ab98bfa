"""explain() and score_jsonl(): the routing side of ``spendgate route``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest

from routing.explain import body_of, explain
from routing.jsonl import score_jsonl
from routing.scorer import Scorer
from routing.select import Candidate
from routing.tiers import Thresholds

TH = Thresholds(small_max=0.7, medium_max=0.9)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


@pytest.fixture
def candidates(make_candidate: Callable[..., Candidate]) -> list[Candidate]:
    return [
        make_candidate("gpt-4o-mini", "small", input_price="0.15", output_price="0.6"),
        make_candidate("gpt-4.1-mini", "medium", input_price="0.4", output_price="1.6"),
        make_candidate("gpt-4o", "large", input_price="2.5", output_price="10", tools=True),
    ]


def test_body_of_accepts_text_json_body_and_message_list() -> None:
    assert body_of("hello") == {"messages": [{"role": "user", "content": "hello"}]}
    assert (
        body_of('{"messages": [{"role": "user", "content": "x"}]}')["messages"][0]["content"] == "x"
    )
    assert body_of('[{"role": "user", "content": "y"}]') == {
        "messages": [{"role": "user", "content": "y"}]
    }
    assert body_of("{not json") == {"messages": [{"role": "user", "content": "{not json"}]}


def test_explain_shows_decision_knob_features_neighbours_and_fallbacks(
    scorer: Scorer, candidates: list[Candidate]
) -> None:
    text = explain("hi", scorer=scorer, candidates=candidates, quality_target=0.95)
    lines = text.splitlines()
    point = scorer.model.operating(0.95)
    assert lines[0].startswith("score 0.")
    assert lines[0].endswith("-> small: gpt-4o-mini")
    assert lines[1].startswith(
        f"quality target 0.95: small < {point.thresholds.small_max:.3f} <= medium < "
        f"{point.thresholds.medium_max:.3f} <= large; on validation prompts: small "
    )
    assert any(line.strip().startswith("last_len") for line in lines)
    neighbours = lines[lines.index("nearest training prompts (cosine, outcome):") + 1 :][:3]
    assert len(neighbours) == 3 and all('"' in line for line in neighbours)
    assert lines[-1] == "fallbacks: gpt-4.1-mini, gpt-4o"
    assert text.isascii()


def test_explain_follows_the_quality_target(scorer: Scorer, candidates: list[Candidate]) -> None:
    strict = explain("hi", scorer=scorer, candidates=candidates, quality_target=1.0)
    loose = explain("hi", scorer=scorer, candidates=candidates, quality_target=0.8)
    assert "quality target 1.00:" in strict.splitlines()[1]
    assert "quality target 0.80:" in loose.splitlines()[1]
    assert strict.splitlines()[1] != loose.splitlines()[1]


def test_explain_without_candidates_says_so(scorer: Scorer) -> None:
    text = explain("hi", scorer=scorer, candidates=[], quality_target=0.95)
    assert "-> no available model" in text


def test_score_jsonl_adds_score_tier_model_and_keeps_fields(
    scorer: Scorer, candidates: list[Candidate]
) -> None:
    rows = [
        {"id": 1, "prompt": [{"role": "user", "content": "hi"}]},
        {
            "id": 2,
            "messages": [
                {
                    "role": "user",
                    "content": "Design and compare three cache eviction policies step by step; you must include code ```def f(): pass```",
                }
            ],
        },
    ]
    inp = io.StringIO("\n".join(json.dumps(r) for r in rows) + "\n\n")
    out = io.StringIO()
    th = scorer.model.operating(0.95).thresholds
    assert score_jsonl(inp, out, scorer=scorer, candidates=candidates, thresholds=th) == 2
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [g["id"] for g in got] == [1, 2]
    assert got[0]["tier"] == "small" and got[0]["model"] == "gpt-4o-mini"
    assert got[1]["score"] > got[0]["score"]
    assert got[1]["tier"] in ("medium", "large")
    assert got[0]["prompt"] == rows[0]["prompt"]


def test_score_jsonl_rejects_bad_lines_with_line_number(
    scorer: Scorer, candidates: list[Candidate]
) -> None:
    with pytest.raises(ValueError, match="line 2: expected an object"):
        score_jsonl(
            io.StringIO('{"prompt": [{"role": "user", "content": "a"}]}\n{"x": 1}\n'),
            io.StringIO(),
            scorer=scorer,
            candidates=candidates,
            thresholds=TH,
        )
    with pytest.raises(ValueError, match="line 1: not JSON"):
        score_jsonl(
            io.StringIO("{\n"), io.StringIO(), scorer=scorer, candidates=candidates, thresholds=TH
        )
