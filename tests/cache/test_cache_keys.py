"""Exact and semantic-context keys: what changes them and what does not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cache.keys import (
    ANSWER_NEUTRAL_FIELDS,
    EXACT_PREFIX,
    exact_key,
    last_user_text,
    semantic_context_key,
)

BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
    ],
}


def key(body: dict[str, Any], namespace: str = "tenant-a", model: str = "gpt-4o") -> str:
    return exact_key(body, namespace=namespace, model=model)


def test_key_is_a_prefixed_sha256_that_hides_the_prompt() -> None:
    k = key(BODY)
    assert k.startswith(EXACT_PREFIX)
    digest = k.removeprefix(EXACT_PREFIX)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert "France" not in k


def test_key_order_and_whitespace_do_not_matter() -> None:
    compact = json.loads(
        '{"model":"gpt-4o","messages":[{"role":"system","content":"You are terse."},'
        '{"role":"user","content":"Capital of France?"}],"temperature":0.2}'
    )
    spaced = json.loads(
        '{ "temperature" : 0.2 ,\n  "messages" : [ { "content" : "You are terse.", "role" : "system" },'
        '\n { "content" : "Capital of France?" , "role" : "user" } ],  "model" : "gpt-4o" }'
    )
    assert list(compact) != list(spaced)
    assert key(compact) == key(spaced)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "required"),
        ("response_format", {"type": "json_object"}),
        ("temperature", 0.7),
        ("top_p", 0.9),
        ("max_tokens", 100),
        ("max_completion_tokens", 100),
        ("stop", ["\n"]),
        ("seed", 42),
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 0.5),
        ("logit_bias", {"50256": -100}),
        ("reasoning_effort", "high"),
        ("parallel_tool_calls", False),
        ("x_unknown_vendor_field", "anything"),
    ],
)
def test_each_answer_changing_field_changes_the_key(field: str, value: Any) -> None:
    assert key({**BODY, field: value}) != key(BODY)


def test_different_values_of_a_field_give_different_keys() -> None:
    assert key({**BODY, "temperature": 0.1}) != key({**BODY, "temperature": 0.2})


@pytest.mark.parametrize(
    ("field", "default"),
    [("temperature", 1), ("temperature", 0), ("top_p", 1), ("n", 1), ("presence_penalty", 0)],
)
def test_an_omitted_parameter_differs_from_its_default(field: str, default: Any) -> None:
    assert key({**BODY, field: default}) != key(BODY)


def test_integral_float_sampling_values_match_their_int_form() -> None:
    assert key({**BODY, "temperature": 1.0}) == key({**BODY, "temperature": 1})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "alice"),
        ("stream", True),
        ("stream_options", {"include_usage": True}),
        ("metadata", {"trace": "x"}),
        ("store", True),
        ("service_tier", "flex"),
        ("prompt_cache_key", "k"),
        ("safety_identifier", "s"),
    ],
)
def test_answer_neutral_fields_do_not_change_the_key(field: str, value: Any) -> None:
    assert field in ANSWER_NEUTRAL_FIELDS
    assert key({**BODY, field: value}) == key(BODY)


def test_resolved_model_replaces_the_body_model() -> None:
    assert key({**BODY, "model": "alias"}) == key(BODY)
    assert key(BODY, model="gpt-4o-mini") != key(BODY, model="gpt-4o")


def test_namespace_is_part_of_the_key() -> None:
    assert key(BODY, namespace="tenant-a") != key(BODY, namespace="tenant-b")


def test_extra_excluded_fields_are_left_out() -> None:
    with_field = {**BODY, "spendgate": {"budget": 1}}
    assert exact_key(with_field, namespace="t", model="m", exclude={"spendgate"}) == exact_key(
        BODY, namespace="t", model="m"
    )
    assert exact_key(with_field, namespace="t", model="m") != exact_key(
        BODY, namespace="t", model="m"
    )


def test_message_content_and_earlier_turns_change_the_key() -> None:
    other_question = {
        **BODY,
        "messages": [BODY["messages"][0], {"role": "user", "content": "Capital of Peru?"}],
    }
    other_system = {
        **BODY,
        "messages": [{"role": "system", "content": "Be verbose."}, BODY["messages"][1]],
    }
    assert len({key(BODY), key(other_question), key(other_system)}) == 3


def test_last_user_text_reads_strings_and_text_parts() -> None:
    assert last_user_text(BODY) == "Capital of France?"
    parts = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe "},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "text", "text": "this image"},
                ],
            }
        ]
    }
    assert last_user_text(parts) == "Describe this image"


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [{"role": "user", "content": None}],
        [{"role": "tool", "tool_call_id": "c", "content": "42"}],
    ],
)
def test_no_user_text_gives_none(messages: list[Any]) -> None:
    body = {"model": "m", "messages": messages}
    assert last_user_text(body) is None
    assert semantic_context_key(body, namespace="t", model="m") is None


def sem(body: dict[str, Any], namespace: str = "t", model: str = "m") -> str | None:
    return semantic_context_key(body, namespace=namespace, model=model)


def with_last(text: str, base: dict[str, Any] = BODY) -> dict[str, Any]:
    return {**base, "messages": [*base["messages"][:-1], {"role": "user", "content": text}]}


def test_semantic_context_ignores_only_the_last_user_text() -> None:
    assert sem(BODY) is not None
    assert sem(with_last("What is France's capital city?")) == sem(BODY)
    assert sem({**BODY, "temperature": 0}) != sem(BODY)
    assert sem({**BODY, "tools": []}) != sem(BODY)
    assert sem({**BODY, "x_unknown": 1}) != sem(BODY)
    assert sem(BODY, namespace="other") != sem(BODY)
    assert sem(BODY, model="other") != sem(BODY)
    assert sem({**BODY, "user": "bob"}) == sem(BODY)
    other_system = {
        **BODY,
        "messages": [{"role": "system", "content": "Be verbose."}, BODY["messages"][1]],
    }
    assert sem(other_system) != sem(BODY)


def test_semantic_context_keeps_non_text_parts_of_the_last_turn() -> None:
    def image_turn(url: str, text: str) -> dict[str, Any]:
        parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
        return {"model": "m", "messages": [{"role": "user", "content": parts}]}

    assert sem(image_turn("a.png", "what is it")) == sem(image_turn("a.png", "what's this"))
    assert sem(image_turn("a.png", "what is it")) != sem(image_turn("b.png", "what is it"))


def test_semantic_context_key_differs_from_exact_key() -> None:
    assert sem(BODY) != exact_key(BODY, namespace="t", model="m")
