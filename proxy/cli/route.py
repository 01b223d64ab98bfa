"""``spendgate route``: what the router would choose and why, without calling anyone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from proxy.cli.common import Subcommands, add_config, guarded, load


def cmd_route(args: argparse.Namespace) -> int:
    from pricing.tokens import TokenCounter
    from proxy.pipeline.accounting import Accountant
    from proxy.pipeline.candidates import build_candidates
    from proxy.pipeline.metrics import Metrics
    from proxy.pipeline.models import ModelTable
    from proxy.server.assembly import build_catalog
    from routing.explain import explain
    from routing.jsonl import score_jsonl
    from routing.scorer import Scorer

    settings = load(args)
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


def register(sub: Subcommands) -> None:
    """Add ``route``."""
    route = sub.add_parser("route", help="what the router would choose, without calling anyone")
    add_config(route)
    group = route.add_mutually_exclusive_group(required=True)
    group.add_argument("--explain", metavar="FILE_OR_TEXT")
    group.add_argument("--jsonl", metavar="IN.jsonl")
    route.set_defaults(func=guarded(cmd_route))
