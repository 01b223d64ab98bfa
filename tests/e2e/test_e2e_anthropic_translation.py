"""The Anthropic provider end to end: chat.completions in, Messages API out, and back.

The simulator's Anthropic endpoint is the reference: the proxy's answer for a
chat request must be what the anthropic SDK gets for the translated request.
Upstream Anthropic errors must reach openai SDK clients as OpenAI errors.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.configs import MAX_ATTEMPTS
from tests.e2e.harness import (
    CLAUDE_MODEL,
    CLAUDE_UPSTREAM,
    SIM_KEY,
    anthropic_message,
    error_message,
    keyless_http_client,
    unique,
)
from tests.support.servers import Simulator

pytestmark = pytest.mark.e2e

MODEL = CLAUDE_MODEL
UPSTREAM = CLAUDE_UPSTREAM


def direct_message(sim: Simulator, **params: Any) -> anthropic.types.Message:
    return anthropic_message(sim, model=UPSTREAM, **params)


def direct_text(message: anthropic.types.Message) -> str:
    block = message.content[0]
    assert block.type == "text"
    return block.text


def test_system_messages_and_turns_are_translated(client: openai.OpenAI, sim: Simulator) -> None:
    system = "You are terse. " * 10
    first, last = unique("First question."), unique("Second question.")
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": first},
            {"role": "assistant", "content": "First answer."},
            {"role": "user", "content": last},
        ],
    )
    direct = direct_message(
        sim,
        max_tokens=1024,
        system=system,
        messages=[
            {"role": "user", "content": first},
            {"role": "assistant", "content": "First answer."},
            {"role": "user", "content": last},
        ],
    )

    assert completion.choices[0].message.content == direct_text(direct)
    assert completion.usage is not None
    # The simulator counts every text it was sent: equal counts mean the system
    # prompt and the earlier turns all reached it.
    assert completion.usage.prompt_tokens == direct.usage.input_tokens
    assert completion.usage.completion_tokens == direct.usage.output_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cuts_the_answer_and_finishes_with_length(
    client: openai.OpenAI, sim: Simulator, stream: bool
) -> None:
    prompt = unique("A long answer, please.")
    direct = direct_message(sim, max_tokens=3, messages=[{"role": "user", "content": prompt}])
    params: Any = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        pieces: list[str] = []
        finish: list[str] = []
        with client.chat.completions.create(**params, max_tokens=3, stream=True) as chunks:
            for chunk in chunks:
                for choice in chunk.choices:
                    pieces.append(choice.delta.content or "")
                    if choice.finish_reason:
                        finish.append(choice.finish_reason)
        text, reasons = "".join(pieces), finish
    else:
        completion = client.chat.completions.create(**params, max_completion_tokens=3)
        text = completion.choices[0].message.content or ""
        reasons = [completion.choices[0].finish_reason]

    assert direct.stop_reason == "max_tokens"
    assert text == direct_text(direct)
    assert len(text.split()) == 3
    assert reasons == ["length"]


def test_n_above_one_is_rejected_naming_the_parameter(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], n=2
        )

    assert caught.value.status_code == 400
    assert caught.value.param == "n"
    assert fresh_sim.calls(UPSTREAM) == 0  # refused before any upstream call


def test_anthropic_overloaded_529_is_502_after_retries(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("529", count=MAX_ATTEMPTS, model="claude-faults")

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="claude-faults",
            messages=[{"role": "user", "content": unique("overload")}],
        )

    assert caught.value.status_code == 502
    assert error_message(caught.value) == "anthropic: Overloaded"
    assert fresh_sim.calls("claude-faults") == MAX_ATTEMPTS


def test_anthropic_overloaded_stream_is_502_before_any_byte(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("529", count=MAX_ATTEMPTS, model="claude-faults")

    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="claude-faults",
            messages=[{"role": "user", "content": unique("overload")}],
            stream=True,
        )

    assert caught.value.status_code == 502
    assert error_message(caught.value) == "anthropic: Overloaded"
    assert fresh_sim.calls("claude-faults") == MAX_ATTEMPTS


def test_an_overloaded_answer_is_retried_to_success(
    client: openai.OpenAI, fresh_sim: Simulator
) -> None:
    fresh_sim.arm("529", count=MAX_ATTEMPTS - 1, model="claude-faults")

    completion = client.chat.completions.create(
        model="claude-faults",
        messages=[{"role": "user", "content": unique("retry me")}],
    )

    assert completion.choices[0].message.content
    assert fresh_sim.calls("claude-faults") == MAX_ATTEMPTS


@pytest.mark.parametrize("stream", [False, True])
def test_a_rejected_provider_key_is_a_502_naming_the_provider(
    client: openai.OpenAI, fresh_sim: Simulator, stream: bool
) -> None:
    # The provider ``anthropic-nokey`` has no api_key, so the simulator answers
    # Anthropic's 401. That is the operator's key, not the client's: the client
    # gets a 502 naming the provider (not a 401 it would take for its own key),
    # and the call is not retried.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="claude-nokey",
            messages=[{"role": "user", "content": unique("no key")}],
            stream=stream,
        )

    assert caught.value.status_code == 502
    assert "anthropic-nokey" in error_message(caught.value)
    assert caught.value.code == "upstream_auth_failed"
    assert fresh_sim.calls("claude-nokey") == 1


def test_the_simulator_speaks_errors_the_anthropic_sdk_parses(
    fresh_sim: Simulator,
) -> None:
    user: Any = [{"role": "user", "content": "hi"}]
    with anthropic.Anthropic(base_url=fresh_sim.base_url, api_key=SIM_KEY, max_retries=0) as a:
        fresh_sim.arm("529", count=1, model="claude-faults")
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            a.messages.create(model="claude-faults", max_tokens=16, messages=user)
        with pytest.raises(anthropic.BadRequestError) as bad:
            a.messages.create(model="claude-faults", max_tokens=16, messages=[])
        fresh_sim.arm("429", count=1, model="claude-faults")
        with pytest.raises(anthropic.RateLimitError) as limited:
            a.messages.create(model="claude-faults", max_tokens=16, messages=user)
    with (
        anthropic.Anthropic(
            base_url=fresh_sim.base_url,
            api_key="unused",
            max_retries=0,
            http_client=keyless_http_client(anthropic.DefaultHttpxClient),
        ) as keyless,
        pytest.raises(anthropic.AuthenticationError) as unauthenticated,
    ):
        keyless.messages.create(model="claude-faults", max_tokens=16, messages=user)

    assert overloaded.value.status_code == 529
    assert isinstance(overloaded.value, anthropic.InternalServerError)
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert bad.value.status_code == 400
    assert "messages" in bad.value.message
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "1"
    assert unauthenticated.value.status_code == 401
