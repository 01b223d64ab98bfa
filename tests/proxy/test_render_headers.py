"""The pre-encoded response headers say exactly what ``exchange_headers`` says."""

from __future__ import annotations

from starlette.responses import Response

from proxy.config import ModelConfig
from proxy.pipeline.exchange import Charges, Exchange, Target
from proxy.pipeline.render import exchange_headers, exchange_raw_headers, with_raw_headers


def _exchange(**fields: object) -> Exchange:
    ex = Exchange("chat", "sg-test-1")
    for name, value in fields.items():
        setattr(ex, name, value)
    return ex


CASES = [
    _exchange(),
    _exchange(
        target=Target(ModelConfig(name="gpt-4o-mini", provider="openai", tier="small"), "openai"),
        cache_status="semantic",
        cache_similarity=0.93456,
        route_reason="score 0.12 -> small\r\nx-injected: 1",
        charges=Charges(cost=1234, baseline_cost=None, savings=None),
    ),
    _exchange(endpoint="embeddings", charges=Charges(cost=5, baseline_cost=9, savings=4)),
]


def test_raw_headers_are_the_exchange_headers_encoded() -> None:
    for ex in CASES:
        expected = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in exchange_headers(ex).items()
        ]
        assert exchange_raw_headers(ex) == expected


def test_raw_headers_follow_the_responses_own() -> None:
    response = with_raw_headers(Response(b"{}", media_type="application/json"), [(b"x-a", b"1")])
    assert response.headers["content-length"] == "2"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-a"] == "1"
