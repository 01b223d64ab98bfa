"""Tenants never see each other's entries unless configured to share a namespace.

Tenants a and b have their own namespaces; c and d share ``shared-cd``. A
request whose body differs in any answer-changing field is a different
request, so no client can write an entry another client's request reads.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e_cache.harness import MODEL, Proxy, tagged
from tests.support.servers import Simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def ask(proxy: Proxy, key: str, body: dict[str, Any]) -> tuple[str, str]:
    """(x-spendgate-cache, completion id) of one non-streaming request."""
    with proxy.client(key) as client:
        raw = client.chat.completions.with_raw_response.create(**body)
        completion = raw.parse()
    assert completion.choices[0].message.content
    return raw.headers["x-spendgate-cache"], completion.id


def fresh_body() -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": tagged("Pick a number.")}]}


def test_same_request_from_another_tenant_is_a_miss(proxy: Proxy, fresh_sim: Simulator) -> None:
    body = fresh_body()
    status_a, id_a = ask(proxy, "k-a", body)
    status_b, id_b = ask(proxy, "k-b", body)
    assert (status_a, status_b) == ("miss", "miss")
    assert id_a != id_b
    assert fresh_sim.chat_calls() == 2
    # Each tenant now reads its own entry, never the other's.
    assert ask(proxy, "k-a", body) == ("exact", id_a)
    assert ask(proxy, "k-b", body) == ("exact", id_b)
    assert fresh_sim.chat_calls() == 2


def test_tenants_sharing_a_namespace_share_entries(proxy: Proxy, fresh_sim: Simulator) -> None:
    body = fresh_body()
    status_c, id_c = ask(proxy, "k-c", body)
    assert status_c == "miss"
    assert ask(proxy, "k-d", body) == ("exact", id_c)
    assert fresh_sim.chat_calls() == 1


@pytest.mark.parametrize(
    "extra",
    [{"temperature": 0.3}, {"seed": 7}, {"max_tokens": 500}],
    ids=["temperature", "seed", "max_tokens"],
)
def test_a_different_body_never_reads_or_replaces_anothers_entry(
    proxy: Proxy, fresh_sim: Simulator, extra: dict[str, Any]
) -> None:
    body = fresh_body()
    _, id_c = ask(proxy, "k-c", body)
    # Same namespace, one more field: a different request, so a miss ...
    status_d, id_d = ask(proxy, "k-d", {**body, **extra})
    assert status_d == "miss" and id_d != id_c
    # ... whose answer is filed under its own key and leaves c's entry intact.
    assert ask(proxy, "k-c", body) == ("exact", id_c)
    assert ask(proxy, "k-d", {**body, **extra}) == ("exact", id_d)
    # Across namespaces the extra field changes nothing: still no sharing.
    status_b, id_b = ask(proxy, "k-b", {**body, **extra})
    assert status_b == "miss" and id_b not in (id_c, id_d)
    assert fresh_sim.chat_calls() == 3
