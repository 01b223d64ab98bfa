"""Subcommands beyond ``serve`` and ``check-config``: keys, pricing, export, audit, route."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from proxy.errors import SpendgateError

AddConfig = Callable[[argparse.ArgumentParser], None]


def _settings(args: argparse.Namespace) -> Any:
    from proxy.cli import load

    return load(args)


def _open_ledger(args: argparse.Namespace) -> Any:
    from pricing.ledger import open_ledger

    return open_ledger(_settings(args).config.ledger.url)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from pricing.ledger import create_key

    store = _open_ledger(args)
    try:
        key, key_id = create_key(store, args.tenant)
    finally:
        store.close()
    print(key)
    print(
        f"key id {key_id} for tenant {args.tenant}; only its sha256 is stored: keep the key now",
        file=sys.stderr,
    )
    return 0


def cmd_pricing(args: argparse.Namespace) -> int:
    from pricing.catalog_format import format_catalog, format_stale, stale_entries
    from pricing.litellm_import import imported_on
    from proxy.server.assembly import build_catalog

    settings = _settings(args)
    if args.words and args.words[0] == "import":
        return _pricing_import(args, settings)
    if len(args.words) > 1 or args.from_litellm_wheel is not None:
        print(f"usage: spendgate pricing [MODEL] | {_IMPORT_USAGE}", file=sys.stderr)
        return 2
    catalog = build_catalog(settings)
    model = args.words[0] if args.words else None
    print(format_catalog(catalog, model))
    today = date.today()
    stale = stale_entries(
        catalog, today=today, imported_on=imported_on(Path(settings.config.pricing.overrides_file))
    )
    if model is not None:
        stale = [(entry, read) for entry, read in stale if entry is catalog.get(model)]
    sys.stderr.write(format_stale(stale, today=today))
    return 0


_IMPORT_USAGE = (
    "spendgate pricing import FILE | spendgate pricing import --from-litellm-wheel [WHEEL]"
    " [--out OVERRIDES]"
)


def _pricing_import(args: argparse.Namespace, settings: Any) -> int:
    from pricing.litellm_import import import_litellm, import_price_map

    dest = Path(args.out or settings.config.pricing.overrides_file)
    wheel_arg = args.from_litellm_wheel
    if (wheel_arg is None) != (len(args.words) == 2) or len(args.words) > 2:
        print(f"usage: {_IMPORT_USAGE}", file=sys.stderr)
        return 2
    if wheel_arg is None:
        report = import_litellm(Path(args.words[1]), dest)
        print(f"imported {report.imported} models into {dest} ({report.skipped_count} skipped)")
        return 0
    from pricing.litellm_wheel import read_installed, read_wheel

    wheel = read_wheel(Path(wheel_arg)) if wheel_arg else read_installed()
    report = import_price_map(
        wheel.content, dest, as_of=wheel.as_of, source=wheel.source, where=wheel.origin,
        imported_on=date.today(),
    )  # fmt: skip
    print(
        f"imported {report.imported} models from {wheel.as_of} ({wheel.origin}) into {dest} "
        f"({report.skipped_count} skipped)"
    )
    return 0


def _output(path: str | None) -> BinaryIO:
    return open(path, "wb") if path else sys.stdout.buffer


def cmd_export(args: argparse.Namespace) -> int:
    from pricing.ledger import summary, summary_csv, write_csv
    from proxy.ops.periods import window

    settings = _settings(args)
    start, end = window(getattr(args, "from"), args.to)
    store = _open_ledger(args)
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

    store = _open_ledger(args)
    try:
        report = audit(store, tenant=args.tenant)
        rollups = store.rollup_discrepancies() if hasattr(store, "rollup_discrepancies") else []
    finally:
        store.close()
    print(format_audit(report))
    for line in rollups:
        print(f"rollup: {line}")
    return 0 if report.ok and not rollups else 1


def cmd_route(args: argparse.Namespace) -> int:
    from pricing.tokens import TokenCounter
    from proxy.pipeline.accounting import Accountant
    from proxy.pipeline.metrics import Metrics
    from proxy.pipeline.models import ModelTable
    from proxy.pipeline.routing_stage import build_candidates
    from proxy.server.assembly import build_catalog
    from routing.explain import explain
    from routing.jsonl import score_jsonl
    from routing.scorer import Scorer

    settings = _settings(args)
    models = ModelTable(settings.config.models)
    accountant = Accountant(
        settings, catalog=build_catalog(settings), counter=TokenCounter(settings.tiktoken_dir),
        models=models, metrics=Metrics(),
    )  # fmt: skip
    routable = {t.model.name for t in models.targets if t.model.tier}
    candidates = [c for name, c in build_candidates(models, accountant).items() if name in routable]
    scorer = Scorer.load()
    target = settings.config.routing.quality_target
    if args.jsonl:
        thresholds = scorer.model.operating(target).thresholds
        with open(args.jsonl, encoding="utf-8") as inp:
            count = score_jsonl(
                inp, sys.stdout, scorer=scorer, candidates=candidates, thresholds=thresholds
            )
        print(f"scored {count} requests", file=sys.stderr)
        return 0
    source = args.explain
    text = Path(source).read_text(encoding="utf-8") if Path(source).is_file() else source
    print(explain(text, scorer=scorer, candidates=candidates, quality_target=target))
    return 0


def register_commands(sub: Any, *, add_config: AddConfig) -> None:
    keys = sub.add_parser("keys", help="manage proxy keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, stores its hash")
    add_config(create)
    create.add_argument("--tenant", required=True)
    create.set_defaults(func=_guarded(cmd_keys_create))

    pricing = sub.add_parser("pricing", help="show the price catalog, or import LiteLLM prices")
    add_config(pricing)
    pricing.add_argument("words", nargs="*", metavar="MODEL | import FILE")
    pricing.add_argument("--out", help="override file to write (default: pricing.overrides_file)")
    pricing.add_argument(
        "--from-litellm-wheel",
        nargs="?",
        const="",
        metavar="WHEEL",
        help="with import: read LiteLLM's price map from this wheel (default: the installed one)",
    )
    pricing.set_defaults(func=_guarded(cmd_pricing))

    export = sub.add_parser("export", help="write ledger rows (or the summary) as CSV")
    add_config(export)
    export.add_argument("--from", help="start date, inclusive (default: this month)")
    export.add_argument("--to", help="end date, exclusive (default: the month's end)")
    export.add_argument("--tenant")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--summary", action="store_true", help="one row per tenant and month")
    export.set_defaults(func=_guarded(cmd_export))

    audit = sub.add_parser("audit", help="recompute every ledger row and check the hash chains")
    add_config(audit)
    audit.add_argument("--tenant")
    audit.set_defaults(func=_guarded(cmd_audit))

    route = sub.add_parser("route", help="what the router would choose, without calling anyone")
    add_config(route)
    group = route.add_mutually_exclusive_group(required=True)
    group.add_argument("--explain", metavar="FILE_OR_TEXT")
    group.add_argument("--jsonl", metavar="IN.jsonl")
    route.set_defaults(func=_guarded(cmd_route))

    from proxy.demo import run as demo

    demo_parser = sub.add_parser(
        "demo", help="see it work: a simulated provider, the proxy, a replayed workload"
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(func=demo.run)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report our errors as one line and exit 1, never as a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except SpendgateError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run
