"""Independent verification of a ledger: prices, hashes, links and gaps.

Every row is re-priced from its own token counts and unit prices, its hash is
recomputed, its ``prev_hash`` must equal the previous row's hash of the same
tenant and its ``seq`` must follow without a gap. Each tenant's last row must
match the stored chain head, so deleting the newest rows is caught as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pricing.ledger.chain import ChainHead, genesis, row_hash
from pricing.ledger.row import LedgerRow, expected_costs
from pricing.ledger.store import LedgerStore


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One field of one row (or of a tenant's chain head) that does not check out."""

    tenant: str
    seq: int | None
    request_id: str | None
    field: str
    expected: str
    found: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    rows_checked: int
    tenants_checked: int
    discrepancies: tuple[Discrepancy, ...]

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def audit(store: LedgerStore, *, tenant: str | None = None) -> AuditReport:
    """Verify every row (of ``tenant``); blocking, streams the rows."""
    heads = {h.tenant: h for h in store.chain_heads(tenant=tenant)}
    found: list[Discrepancy] = []
    rows = 0
    tenants: set[str] = set()
    last = ChainHead(tenant="", seq=0, row_hash="")
    try:
        for row in store.iter_chain(tenant=tenant):
            if row.tenant != last.tenant:
                if last.tenant:
                    found.extend(_check_head(last, heads.get(last.tenant)))
                tenants.add(row.tenant)
                last = genesis(row.tenant)
            found.extend(_check_row(row, last))
            last = ChainHead(tenant=row.tenant, seq=row.seq or 0, row_hash=row.row_hash or "")
            rows += 1
    except ValueError as exc:
        # A value no valid row can hold (e.g. an unknown cache_status): the
        # stream cannot go on, so the audit reports it and stops there.
        found.append(Discrepancy(last.tenant, None, None, "row", "a readable row", str(exc)))
        return AuditReport(
            rows_checked=rows, tenants_checked=len(tenants), discrepancies=tuple(found)
        )
    if last.tenant:
        found.extend(_check_head(last, heads.get(last.tenant)))
    for name, head in sorted(heads.items()):
        if name not in tenants and head.seq != 0:
            found.extend(_check_head(genesis(name), head))
            tenants.add(name)
    return AuditReport(rows_checked=rows, tenants_checked=len(tenants), discrepancies=tuple(found))


def _check_row(row: LedgerRow, previous: ChainHead) -> Iterator[Discrepancy]:
    def bad(field: str, expected: object, found: object) -> Discrepancy:
        return Discrepancy(row.tenant, row.seq, row.request_id, field, _s(expected), _s(found))

    if row.seq != previous.seq + 1:
        yield bad("seq", previous.seq + 1, row.seq)
    if row.prev_hash != previous.row_hash:
        yield bad("prev_hash", previous.row_hash, row.prev_hash)
    recomputed = row_hash(row)
    if row.row_hash != recomputed:
        yield bad("row_hash", recomputed, row.row_hash)
    costs = expected_costs(row)
    for field in ("cost", "baseline_cost", "savings"):
        expected = getattr(costs, field)
        if getattr(row, field) != expected:
            yield bad(field, expected, getattr(row, field))


def _check_head(last: ChainHead, head: ChainHead | None) -> Iterator[Discrepancy]:
    if head is None:
        yield Discrepancy(last.tenant, None, None, "chain_head", f"seq {last.seq}", "missing")
        return
    if head.seq != last.seq:
        yield Discrepancy(last.tenant, head.seq, None, "chain_head.seq", _s(head.seq), _s(last.seq))
    if head.row_hash != last.row_hash:
        yield Discrepancy(
            last.tenant, head.seq, None, "chain_head.row_hash", head.row_hash, last.row_hash
        )


def _s(value: object) -> str:
    return "NULL" if value is None else str(value)


def format_audit(report: AuditReport) -> str:
    """ "OK" for a clean ledger, else one line per discrepancy and a count."""
    if report.ok:
        return "OK"
    lines = [
        f"tenant={d.tenant} seq={_s(d.seq)} request_id={_s(d.request_id)} "
        f"field={d.field} expected={d.expected} found={d.found}"
        for d in report.discrepancies
    ]
    lines.append(
        f"{len(report.discrepancies)} discrepancies in {report.rows_checked} rows "
        f"of {report.tenants_checked} tenants"
    )
    return "\n".join(lines)
