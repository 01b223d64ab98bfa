"""``spendgate keys create``: a new proxy key, printed once; only its sha256 is stored."""

from __future__ import annotations

import argparse
import sys

from proxy.cli.common import Subcommands, add_config, guarded, load
from proxy.cli.ledger import open_configured_ledger


def cmd_keys_create(args: argparse.Namespace) -> int:
    from pricing.ledger import create_key

    store = open_configured_ledger(load(args))
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


def register(sub: Subcommands) -> None:
    """Add ``keys create``."""
    keys = sub.add_parser("keys", help="manage proxy keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, stores its hash")
    add_config(create)
    create.add_argument("--tenant", required=True)
    create.set_defaults(func=guarded(cmd_keys_create))
