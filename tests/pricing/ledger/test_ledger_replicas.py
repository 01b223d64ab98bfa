"""Several proxy replicas appending to one PostgreSQL ledger at once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest

from pricing.ledger import GENESIS_HASH, LedgerRow, audit, open_ledger
from tests.pricing.ledger.ledger_testkit import make_row, pg_url_for

pytestmark = pytest.mark.postgres


def _run_concurrently(jobs: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], None]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_concurrent_writers_keep_one_valid_chain_per_tenant(pg_schema: str) -> None:
    url = pg_url_for(pg_schema)
    stores = [open_ledger(url) for _ in range(3)]
    shared = [make_row(i, tenant="shared") for i in range(40)]

    def replica(n: int) -> Callable[[], None]:
        own = [make_row(1000 * (n + 1) + i, tenant="shared") for i in range(60)]
        other = [make_row(i, tenant=f"solo-{n}") for i in range(20)]

        def job() -> None:
            for k in range(0, 60, 6):
                # Replicas also retry the same request ids: each lands once.
                batch: list[LedgerRow] = own[k : k + 6] + shared[k // 6 * 4 : k // 6 * 4 + 4]
                batch += other[k // 3 : k // 3 + 2]
                stores[n].write_batch(batch)

        return job

    try:
        _run_concurrently([replica(n) for n in range(3)])
        chain = list(stores[0].iter_chain(tenant="shared"))
        assert len(chain) == 3 * 60 + 40
        assert len({r.request_id for r in chain}) == len(chain)
        assert [r.seq for r in chain] == list(range(1, len(chain) + 1))
        assert chain[0].prev_hash == GENESIS_HASH
        assert all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(chain))
        report = audit(stores[1])
        assert report.ok, report.discrepancies
        assert report.rows_checked == 3 * 60 + 40 + 3 * 20 and report.tenants_checked == 4
    finally:
        for s in stores:
            s.close()
