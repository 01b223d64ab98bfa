"""The endpoints the proxy passes through to ``type: openai`` providers."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.e2e.harness import CLAUDE_MODEL, OPENAI_MODEL, unique

pytestmark = pytest.mark.e2e


def test_models_lists_the_configured_models_and_auto(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]

    for name in (
        OPENAI_MODEL,
        "gpt-4o-mini",
        CLAUDE_MODEL,
        "text-embedding-3-small",
        "auto",
    ):
        assert name in ids
    assert len(ids) == len(set(ids))


def test_embeddings_pass_through(client: openai.OpenAI, sim_client: openai.OpenAI) -> None:
    texts = [unique("first text"), unique("second text")]
    result = client.embeddings.create(model="text-embedding-3-small", input=texts)
    direct = sim_client.embeddings.create(model="text-embedding-3-small", input=texts)

    assert [d.index for d in result.data] == [0, 1]
    assert [d.embedding for d in result.data] == [d.embedding for d in direct.data]
    assert len(result.data[0].embedding) > 0
    assert result.usage.prompt_tokens > 0


def test_responses_pass_through(client: openai.OpenAI, sim_client: openai.OpenAI) -> None:
    prompt = unique("Answer through the Responses API.")
    raw = client.responses.with_raw_response.create(model=OPENAI_MODEL, input=prompt)
    response = raw.parse()
    direct = sim_client.responses.create(model=OPENAI_MODEL, input=prompt)

    assert response.output_text == direct.output_text
    assert response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert raw.headers["x-spendgate-provider"] == "openai"
    assert float(raw.headers["x-spendgate-cost-usd"]) > 0


def test_responses_stream_pass_through(client: openai.OpenAI, sim_client: openai.OpenAI) -> None:
    prompt = unique("Stream through the Responses API.")
    deltas: list[str] = []
    completed: Any = None
    with client.responses.create(model=OPENAI_MODEL, input=prompt, stream=True) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                completed = event.response

    assert completed is not None
    assert (
        "".join(deltas) == sim_client.responses.create(model=OPENAI_MODEL, input=prompt).output_text
    )
    assert completed.usage is not None
    assert completed.usage.input_tokens > 0
    assert completed.usage.output_tokens > 0
