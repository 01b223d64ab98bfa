"""``spendgate pricing``: the price catalog, one entry, or an import of LiteLLM's prices."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from proxy.cli.common import Subcommands, add_config, guarded, load
from proxy.settings import Settings


def cmd_pricing(args: argparse.Namespace) -> int:
    from pricing.catalog_format import format_catalog, format_stale, stale_entries
    from pricing.litellm_import import imported_on
    from proxy.server.assembly import build_catalog

    settings = load(args)
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


def _pricing_import(args: argparse.Namespace, settings: Settings) -> int:
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


def register(sub: Subcommands) -> None:
    """Add ``pricing``."""
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
    pricing.set_defaults(func=guarded(cmd_pricing))
