"""Tenants never see each other's cache, ledger rows or budgets; admin data needs the admin key."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

import proxy.pipeline.auth
from pricing.ledger import create_key, open_ledger
from proxy.config import AuthConfig
from proxy.errors import AuthenticationError
from tests.hostile.support import Upstream
from tests.proxy.support import completion, make_settings, proxy_client

KEY_A = "sk-proxy-tenant-a-0123456789"
KEY_B = "sk-proxy-tenant-b-0123456789"
ADMIN_KEY = "sk-admin-0123456789"
AUTH = {
    "admin_key": ADMIN_KEY,
    "keys": [{"key": KEY_A, "tenant": "a"}, {"key": KEY_B, "tenant": "b"}],
}
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "the same prompt"}]}

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def settings_for(tmp_path: Path, **overrides: Any) -> Any:
    return make_settings(auth=AUTH, ledger={"url": ledger_url(tmp_path)}, **overrides)


@pytest.mark.parametrize(
    "cache",
    [{"backend": "memory"}, {"backend": "memory", "semantic": {"enabled": True}}],
    ids=["exact", "semantic"],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_one_tenants_cache_never_answers_another(
    tmp_path: Path, cache: dict[str, Any], stream: bool
) -> None:
    upstream = Upstream()
    body = {**BODY, "stream": stream}
    async with proxy_client(upstream, settings_for(tmp_path, cache=cache)) as client:
        first = await client.post("/v1/chat/completions", json=body, headers=bearer(KEY_A))
        again = await client.post("/v1/chat/completions", json=body, headers=bearer(KEY_A))
        other = await client.post("/v1/chat/completions", json=body, headers=bearer(KEY_B))
    assert first.status_code == again.status_code == other.status_code == 200
    # A's second call is served from A's cache: the cache works, so B's miss means something.
    assert again.headers["x-spendgate-cache"] != "miss"
    assert other.headers["x-spendgate-cache"] == "miss"
    assert len(upstream.requests) == 2


async def test_ledger_rows_are_recorded_under_the_callers_tenant(tmp_path: Path) -> None:
    upstream = Upstream()
    ids: dict[str, str] = {}
    async with proxy_client(upstream, settings_for(tmp_path)) as client:
        for tenant, key in (("a", KEY_A), ("b", KEY_B)):
            body = {**BODY, "messages": [{"role": "user", "content": f"from {tenant}"}]}
            reply = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
            assert reply.status_code == 200
            ids[reply.headers["x-spendgate-request-id"]] = tenant
        bad = await client.post("/v1/chat/completions", json={"model": 1}, headers=bearer(KEY_B))
        assert bad.status_code == 400
        ids[bad.headers["x-spendgate-request-id"]] = "b"
    store = open_ledger(ledger_url(tmp_path))
    try:
        rows = {row.request_id: row.tenant for row in store.iter_chain()}
        assert store.count(tenant="a") == 1
    finally:
        store.close()
    assert rows == ids


@pytest.mark.parametrize(
    "path", ["/admin/export.csv", "/admin/summary", "/admin/summary?format=json", "/admin/budgets"]
)
async def test_admin_endpoints_reject_proxy_keys(tmp_path: Path, path: str) -> None:
    async with proxy_client(Upstream(), settings_for(tmp_path)) as client:
        for headers in (
            bearer(KEY_A),
            {"x-api-key": KEY_B},
            {},
            bearer(ADMIN_KEY + "x"),
            {"cookie": f"spendgate_admin={KEY_A}"},
        ):
            reply = await client.get(path, headers=headers)
            assert reply.status_code == 401, (headers, reply.text)
            assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
        admin = await client.get(path, headers=bearer(ADMIN_KEY))
    assert admin.status_code == 200


async def test_admin_endpoints_are_closed_without_an_admin_key(tmp_path: Path) -> None:
    auth = {"keys": AUTH["keys"]}
    settings = make_settings(auth=auth, ledger={"url": ledger_url(tmp_path)})
    async with proxy_client(Upstream(), settings) as client:
        for key in (KEY_A, "", "anything"):
            reply = await client.get("/admin/export.csv", headers=bearer(key) if key else {})
            assert reply.status_code in (401, 403)
            assert "error" in reply.json()


async def test_a_budget_for_one_tenant_is_not_charged_by_another(tmp_path: Path) -> None:
    budgets = [{"period": "day", "limit_usd": "0.1", "tenant": "b", "name": "b-daily"}]
    price = {"input": "100", "output": "100"}  # each answer below costs 0.2 USD: over B's limit
    models = [
        {"name": "gpt-4o", "provider": "openai", "tier": "large", "price": price},
        {"name": "gpt-4o-mini", "provider": "openai", "tier": "small", "price": price},
    ]
    settings = settings_for(tmp_path, budgets=budgets, models=models)
    usage = {"prompt_tokens": 2000, "completion_tokens": 0, "total_tokens": 2000}
    upstream = Upstream(lambda request: httpx.Response(200, json=completion(usage=usage)))
    async with proxy_client(upstream, settings) as client:
        for i in range(3):
            body = {**BODY, "messages": [{"role": "user", "content": f"a{i}"}]}
            reply = await client.post("/v1/chat/completions", json=body, headers=bearer(KEY_A))
            assert reply.status_code == 200, reply.text
        state = (await client.get("/admin/budgets", headers=bearer(ADMIN_KEY))).json()
        by_name = {b["name"]: b for b in state["budgets"]}
        assert by_name["b-daily"]["used_usd"] == "0.000000", state
        b_first = await client.post("/v1/chat/completions", json=BODY, headers=bearer(KEY_B))
        assert b_first.status_code == 200, b_first.text
        # B's own spend does count against B: the budget is live, not ignored.
        for i in range(3):
            body = {**BODY, "messages": [{"role": "user", "content": f"b{i}"}]}
            last = await client.post("/v1/chat/completions", json=body, headers=bearer(KEY_B))
        assert last.status_code == 429, last.text
        assert last.json()["error"]["type"] == "budget_exceeded"


async def test_stored_keys_are_sha256_digests_only(tmp_path: Path) -> None:
    url = ledger_url(tmp_path)
    open_ledger(url).close()
    plaintext, _ = create_key(url, "c")

    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
    assert rows
    flat = json.dumps([[str(v) for v in row] for row in rows])
    assert plaintext not in flat
    assert plaintext[3:] not in flat
    assert hashlib.sha256(plaintext.encode()).hexdigest() in flat
    async with proxy_client(Upstream(), settings_for(tmp_path)) as client:
        reply = await client.post("/v1/chat/completions", json=BODY, headers=bearer(plaintext))
        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        held = (
            json.dumps({k: str(v) for k, v in vars(runtime.auth).items()})
            if hasattr(runtime.auth, "__dict__")
            else ""
        )
        held += repr(getattr(runtime.auth, "_by_digest", {}))
        held += repr(getattr(runtime.auth, "_admin_digest", ""))
    assert reply.status_code == 200
    for secret in (plaintext, KEY_A, KEY_B, ADMIN_KEY):
        assert secret not in held


def test_the_authenticator_holds_digests_and_compares_the_admin_key_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    digest_only = hashlib.sha256(b"only-the-digest-is-configured").hexdigest()
    auth = proxy.pipeline.auth.Authenticator(
        AuthConfig.model_validate(
            {
                "admin_key": ADMIN_KEY,
                "keys": [
                    {"key": KEY_A, "tenant": "a"},
                    {"key_sha256": digest_only, "tenant": "d"},
                ],
            }
        )
    )
    table = auth._by_digest
    assert set(table) == {hashlib.sha256(KEY_A.encode()).hexdigest(), digest_only}
    assert KEY_A not in repr(table) and ADMIN_KEY not in repr(auth._admin_digest)
    # A key known only by its digest authenticates: lookup is by digest of what is presented.
    principal = auth.authenticate(httpx.Headers(bearer("only-the-digest-is-configured")))
    assert principal.tenant == "d"
    calls: list[tuple[object, object]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module proxy.pipeline.auth calls through
    auth.authenticate_admin(ADMIN_KEY)
    with pytest.raises(AuthenticationError):
        auth.authenticate_admin(KEY_A)
    assert len(calls) == 2
    assert all(ADMIN_KEY not in (a, b) for a, b in calls)  # digests, never the plaintext


def test_stored_keys_replaced_on_reload_keep_configured_keys_and_never_reopen() -> None:
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def tenant_of(auth: proxy.pipeline.auth.Authenticator, key: str) -> str:
        return auth.authenticate(httpx.Headers(bearer(key))).tenant

    configured = proxy.pipeline.auth.Authenticator(
        AuthConfig.model_validate({"keys": [{"key": KEY_A, "tenant": "a"}]}),
        stored_keys=[(digest("stored-1"), "key_1", "s")],
    )
    assert (tenant_of(configured, KEY_A), tenant_of(configured, "stored-1")) == ("a", "s")
    configured.set_stored_keys([])  # the stored key was revoked
    with pytest.raises(AuthenticationError):
        configured.authenticate(httpx.Headers(bearer("stored-1")))
    assert tenant_of(configured, KEY_A) == "a"  # a configured key is never dropped

    only_stored = proxy.pipeline.auth.Authenticator(None)
    assert only_stored.authenticate(httpx.Headers({})).tenant == "default"  # open: no key yet
    only_stored.set_stored_keys([(digest("stored-2"), "key_2", "t")])
    assert tenant_of(only_stored, "stored-2") == "t"
    only_stored.set_stored_keys([])  # every key revoked: closed, not open again
    for presented in ({}, bearer("stored-2")):
        with pytest.raises(AuthenticationError):
            only_stored.authenticate(httpx.Headers(presented))
