"""The semantic stage, end to end: paraphrases hit, different questions do not.

With the ``hash`` embedder, a rewording that differs only in case and
punctuation is answered from the cache with ``x-spendgate-cache: semantic``
and the similarity it scored; a question that differs by one number must go
to the upstream. With the default embedder (``wordllama``) a reworded
question hits and a question with one noun swapped does not; the proxy
holds the model in memory only when the semantic cache is on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_cache.harness import MODEL, Proxy, proxy_config
from tests.support.servers import Simulator, start_proxy

pytestmark = [
    pytest.mark.e2e,
]


@pytest.fixture(scope="module")
def semantic_proxy(
    sim: Simulator, workdir: Path, child_environment: dict[str, str]
) -> Iterator[Proxy]:
    cache = {"backend": "memory", "semantic": {"enabled": True, "embedder": "hash"}}
    server = start_proxy(
        proxy_config(sim, workdir, cache=cache), workdir, kind=Proxy, env=child_environment
    )
    try:
        yield server
    finally:
        server.process.stop()


def ask(proxy: Proxy, text: str) -> tuple[dict[str, str], str]:
    """(response headers, completion id) for one user question."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    with proxy.client() as client:
        raw = client.chat.completions.with_raw_response.create(**body)
        completion = raw.parse()
    return dict(raw.headers), completion.id


def test_paraphrase_differing_in_case_and_punctuation_hits(
    semantic_proxy: Proxy, fresh_sim: Simulator
) -> None:
    # The same rare word in both keeps other tests' entries out of reach.
    topic = f"zq{uuid.uuid4().hex[:8]}"
    headers, first = ask(semantic_proxy, f"What is the capital city of {topic}?")
    assert headers["x-spendgate-cache"] == "miss"
    headers, second = ask(semantic_proxy, f"what is the capital city of {topic.upper()}")
    assert headers["x-spendgate-cache"] == "semantic"
    similarity = float(headers["x-spendgate-cache-similarity"])
    assert 0.0 < similarity <= 1.0
    assert second == first
    assert fresh_sim.chat_calls() == 1


def test_question_differing_by_a_number_misses(semantic_proxy: Proxy, fresh_sim: Simulator) -> None:
    topic = f"zq{uuid.uuid4().hex[:8]}"
    headers, first = ask(semantic_proxy, f"How many {topic} fit in 3 boxes?")
    assert headers["x-spendgate-cache"] == "miss"
    headers, second = ask(semantic_proxy, f"How many {topic} fit in 4 boxes?")
    assert headers["x-spendgate-cache"] == "miss"
    assert "x-spendgate-cache-similarity" not in headers
    assert second != first
    assert fresh_sim.chat_calls() == 2


@pytest.fixture(scope="module")
def default_semantic_proxy(
    sim: Simulator, workdir: Path, child_environment: dict[str, str]
) -> Iterator[Proxy]:
    """The semantic cache on with no embedder named: the default, ``wordllama``."""
    cache = {"backend": "memory", "semantic": {"enabled": True}}
    server = start_proxy(
        proxy_config(sim, workdir, cache=cache), workdir, kind=Proxy, env=child_environment
    )
    try:
        yield server
    finally:
        server.process.stop()


def test_default_embedder_serves_a_reworded_question(
    default_semantic_proxy: Proxy, fresh_sim: Simulator
) -> None:
    headers, first = ask(default_semantic_proxy, "How do I reset my router password?")
    assert headers["x-spendgate-cache"] == "miss"
    headers, second = ask(default_semantic_proxy, "How can I reset the password of my router?")
    assert headers["x-spendgate-cache"] == "semantic"
    assert 0.8 <= float(headers["x-spendgate-cache-similarity"]) <= 1.0
    assert second == first
    assert fresh_sim.chat_calls() == 1


def test_default_embedder_does_not_serve_a_question_with_a_swapped_noun(
    default_semantic_proxy: Proxy, fresh_sim: Simulator
) -> None:
    headers, first = ask(default_semantic_proxy, "How do I cook rice in a microwave?")
    assert headers["x-spendgate-cache"] == "miss"
    headers, second = ask(default_semantic_proxy, "How do I cook pasta in a microwave?")
    assert headers["x-spendgate-cache"] == "miss"
    assert second != first
    assert fresh_sim.chat_calls() == 2


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_the_model_is_in_memory_only_when_the_semantic_cache_is_on(
    default_semantic_proxy: Proxy,
    semantic_proxy: Proxy,
    sim: Simulator,
    workdir: Path,
    child_environment: dict[str, str],
) -> None:
    """The embedding table alone is 32 MiB: a proxy that loaded it cannot hide it."""
    off = start_proxy(
        proxy_config(sim, workdir, cache={"backend": "memory"}),
        workdir,
        kind=Proxy,
        env=child_environment,
    )
    try:
        without = rss_mib(off.process.pid)
    finally:
        off.process.stop()
    with_hash = rss_mib(semantic_proxy.process.pid)
    with_model = rss_mib(default_semantic_proxy.process.pid)
    assert with_model - without > 30
    assert with_model - with_hash > 30
    assert with_model - without < 70
