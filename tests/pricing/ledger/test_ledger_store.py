"""Store behaviour on both engines: idempotency, chain, audit, reads, keys."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pricing.ledger import (
    GENESIS_HASH,
    LedgerStore,
    audit,
    create_key,
    format_audit,
    key_sha256,
    load_keys,
    open_ledger,
    revoke_key,
    row_hash,
)
from proxy.errors import ConfigError
from tests.pricing.ledger.ledger_testkit import BASE_TS, Backend, make_row


def test_duplicate_request_ids_are_ignored(store: LedgerStore) -> None:
    rows = [make_row(i) for i in range(5)]
    assert store.write_batch(rows) == 5
    assert store.write_batch([*rows[2:], make_row(5)]) == 1
    assert store.write_batch([make_row(6), make_row(6)]) == 1
    assert store.count() == 7
    assert [r.seq for r in store.iter_chain(tenant="acme")] == list(range(1, 8))
    assert format_audit(audit(store)) == "OK"


def test_rows_round_trip_exactly(store: LedgerStore) -> None:
    original = make_row(3, agent=None, error_type="upstream_timeout", http_status=504)
    store.write_batch([original])
    (stored,) = store.iter_chain()
    assert stored.seq == 1 and stored.prev_hash == GENESIS_HASH
    assert stored.row_hash == row_hash(stored)
    for name in ("ts", "price_cache_write", "cost", "savings", "agent", "error_type"):
        assert getattr(stored, name) == getattr(original, name)


def test_chains_are_per_tenant_and_linked(store: LedgerStore) -> None:
    rows = [make_row(i, tenant="a" if i % 3 else "b") for i in range(12)]
    store.write_batch(rows[:5])
    store.write_batch(rows[5:])
    for tenant in ("a", "b"):
        chain = list(store.iter_chain(tenant=tenant))
        assert [r.seq for r in chain] == list(range(1, len(chain) + 1))
        previous = GENESIS_HASH
        for row in chain:
            assert row.prev_hash == previous
            previous = row.row_hash or ""
        (head,) = store.chain_heads(tenant=tenant)
        assert (head.seq, head.row_hash) == (len(chain), previous)
    report = audit(store)
    assert report.ok and report.rows_checked == 12 and report.tenants_checked == 2


@pytest.mark.parametrize(
    ("column", "value", "fields"),
    [
        ("cost", "cost + 1", {"cost", "row_hash"}),
        ("completion_tokens", "completion_tokens + 10", {"cost", "savings", "row_hash"}),
        ("baseline_price_output", "'61'", {"baseline_cost", "savings", "row_hash"}),
        ("agent", "'someone-else'", {"row_hash"}),
    ],
)
def test_audit_finds_an_edited_row(
    store: LedgerStore, backend: Backend, column: str, value: str, fields: set[str]
) -> None:
    store.write_batch([make_row(i) for i in range(6)])
    backend.execute(f"UPDATE ledger_rows SET {column} = {value} WHERE request_id = 'req-acme-3'")
    report = audit(store)
    assert {(d.request_id, d.field) for d in report.discrepancies} == {
        ("req-acme-3", f) for f in fields
    }
    assert "request_id=req-acme-3" in format_audit(report)


def test_audit_reports_an_unreadable_row(store: LedgerStore, backend: Backend) -> None:
    store.write_batch([make_row(i) for i in range(3)])
    backend.execute("UPDATE ledger_rows SET cache_status = 'free' WHERE request_id = 'req-acme-1'")
    report = audit(store)
    (problem,) = report.discrepancies
    assert problem.field == "row" and "req-acme-1" in problem.found
    assert report.rows_checked == 1


def test_audit_finds_a_deleted_row(store: LedgerStore, backend: Backend) -> None:
    store.write_batch([make_row(i) for i in range(6)])
    backend.execute("DELETE FROM ledger_rows WHERE request_id = 'req-acme-2'")
    fields = {(d.seq, d.field) for d in audit(store).discrepancies}
    assert fields == {(4, "seq"), (4, "prev_hash")}


def test_audit_finds_deleted_newest_rows(store: LedgerStore, backend: Backend) -> None:
    store.write_batch([make_row(i) for i in range(4)] + [make_row(0, tenant="other")])
    backend.execute("DELETE FROM ledger_rows WHERE request_id = 'req-acme-3'")
    backend.execute("DELETE FROM ledger_rows WHERE tenant = 'other'")
    found = {(d.tenant, d.field) for d in audit(store).discrepancies}
    assert found == {
        ("acme", "chain_head.seq"),
        ("acme", "chain_head.row_hash"),
        ("other", "chain_head.seq"),
        ("other", "chain_head.row_hash"),
    }
    assert audit(store, tenant="acme").tenants_checked == 1


def test_unknown_prices_are_recorded_without_a_cost(store: LedgerStore) -> None:
    row = make_row(
        1,
        price_source="unknown",
        price_input=None,
        price_cached_input=None,
        price_cache_write=None,
        price_output=None,
    )
    assert row.cost is None and row.savings is None and row.baseline_cost is not None
    store.write_batch([row, make_row(2)])
    (totals,) = store.totals(start=BASE_TS, end=BASE_TS + timedelta(days=1))
    assert (totals.requests, totals.priced_requests, totals.unpriced_requests) == (2, 1, 1)
    assert totals.cost == make_row(2).cost
    assert audit(store).ok


def test_iter_rows_filters_time_and_tenant(store: LedgerStore) -> None:
    rows = [make_row(i, tenant="a" if i % 2 else "b") for i in range(10)]
    store.write_batch(rows)
    window = list(store.iter_rows(start=rows[2].ts, end=rows[7].ts))
    assert [r.request_id for r in window] == [r.request_id for r in rows[2:7]]
    only_a = list(store.iter_rows(start=rows[0].ts, end=rows[9].ts, tenant="a"))
    assert [r.request_id for r in only_a] == [r.request_id for r in rows[1:9:2]]


def test_totals_are_sql_sums(store: LedgerStore) -> None:
    rows = [make_row(i, tenant="a" if i % 2 else "b") for i in range(9)]
    store.write_batch(rows)
    totals = {t.tenant: t for t in store.totals(start=BASE_TS, end=BASE_TS + timedelta(hours=1))}
    for tenant in ("a", "b"):
        mine = [r for r in rows if r.tenant == tenant]
        assert totals[tenant].requests == len(mine)
        assert totals[tenant].cost == sum(r.cost or 0 for r in mine)
        assert totals[tenant].savings == sum(r.savings or 0 for r in mine)
        assert totals[tenant].baseline_cost - totals[tenant].cost == totals[tenant].savings


def test_keys_are_stored_only_as_hashes(store: LedgerStore, backend: Backend) -> None:
    plaintext, key_id = create_key(store, "acme")
    other, _ = create_key(backend.url, "globex")
    assert plaintext.startswith("sg-") and len(plaintext) == 3 + 43
    dump = repr(backend.execute("SELECT * FROM api_keys"))
    assert plaintext not in dump and other not in dump
    keys = load_keys(backend.url)
    assert (key_sha256(plaintext), key_id, "acme") in keys and len(keys) == 2
    assert revoke_key(store, key_id) and not revoke_key(store, key_id)
    assert [k[2] for k in load_keys(store)] == ["globex"]


def test_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_ledger("sqlite:///data/rel.db")
    relative.close()
    assert (tmp_path / "data" / "rel.db").is_file()
    absolute = open_ledger(f"sqlite:///{tmp_path}/abs.db")
    absolute.close()
    assert (tmp_path / "abs.db").is_file()
    memory = open_ledger("sqlite:///:memory:")
    memory.write_batch([make_row(1), make_row(2)])
    assert memory.count() == 2 and audit(memory).ok
    other_memory = open_ledger("sqlite:///:memory:")
    assert other_memory.count() == 0
    memory.close()
    other_memory.close()
    for bad in ("sqlite:///", "mysql://x/y", "ledger.db", "sqlite:///x.db?mode=ro"):
        with pytest.raises(ConfigError):
            open_ledger(bad)
