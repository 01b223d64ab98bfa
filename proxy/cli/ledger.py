"""``spendgate export`` and ``spendgate audit``: the ledger's rows, its invoice, its checks."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, BinaryIO

from proxy.cli.common import Subcommands, add_config, guarded, load
from proxy.settings import Settings

if TYPE_CHECKING:
    from pricing.ledger import LedgerStore


def open_configured_ledger(settings: Settings) -> LedgerStore:
    """The ledger that ``settings`` name."""
    from pricing.ledger import open_ledger

    return open_ledger(settings.config.ledger.url)


def _output(path: str | None) -> BinaryIO:
    return open(path, "wb") if path else sys.stdout.buffer


def cmd_export(args: argparse.Namespace) -> int:
    from pricing.ledger import summary, summary_csv, write_csv
    from proxy.ops.periods import window

    settings = load(args)
    start, end = window(getattr(args, "from"), args.to)
    store = open_configured_ledger(settings)
    out = _output(args.out)
    try:
        if args.summary:
            rows = summary(
                store, start=start, end=end, tenant=args.tenant,
                fee_rate=settings.config.ledger.fee_rate, period="month",
            )  # fmt: skip
            for chunk in summary_csv(rows):
                out.write(chunk)
        else:
            write_csv(store, out, start=start, end=end, tenant=args.tenant)
    finally:
        out.flush()
        if args.out:
            out.close()
        store.close()
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from pricing.ledger import audit, format_audit

    store = open_configured_ledger(load(args))
    try:
        report = audit(store, tenant=args.tenant)
        rollups = store.rollup_discrepancies() if hasattr(store, "rollup_discrepancies") else []
    finally:
        store.close()
    print(format_audit(report))
    for line in rollups:
        print(f"rollup: {line}")
    return 0 if report.ok and not rollups else 1


def register(sub: Subcommands) -> None:
    """Add ``export`` and ``audit``."""
    export = sub.add_parser("export", help="write ledger rows (or the summary) as CSV")
    add_config(export)
    export.add_argument("--from", help="start date, inclusive (default: this month)")
    export.add_argument("--to", help="end date, exclusive (default: the month's end)")
    export.add_argument("--tenant")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--summary", action="store_true", help="one row per tenant and month")
    export.set_defaults(func=guarded(cmd_export))

    audit = sub.add_parser("audit", help="recompute every ledger row and check the hash chains")
    add_config(audit)
    audit.add_argument("--tenant")
    audit.set_defaults(func=guarded(cmd_audit))
