"""``spendgate keys``: proxy keys kept in the ledger database as sha256 hashes.

* ``keys create --tenant T`` prints a new key once;
* ``keys list`` shows each key's id, tenant, creation time and state, never
  the key nor its hash;
* ``keys revoke KEY_ID`` stops a key.

A running proxy reads the active keys again every few seconds, so a created
or revoked key takes effect without a restart.
"""

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


def cmd_keys_list(args: argparse.Namespace) -> int:
    store = open_configured_ledger(load(args))
    try:
        records = store.api_keys(include_revoked=True)
    finally:
        store.close()
    print("key_id\ttenant\tcreated_at\tstate")
    for r in records:
        created = r.created_at.isoformat().replace("+00:00", "Z")
        print(f"{r.key_id}\t{r.tenant}\t{created}\t{'revoked' if r.revoked else 'active'}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from pricing.ledger import revoke_key

    store = open_configured_ledger(load(args))
    try:
        revoked = revoke_key(store, args.key_id)
    finally:
        store.close()
    if not revoked:
        print(f"error: no active key with id {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}; running proxies stop accepting it within seconds")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``keys create``, ``keys list`` and ``keys revoke``."""
    keys = sub.add_parser("keys", help="manage proxy keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, stores its hash")
    add_config(create)
    create.add_argument("--tenant", required=True)
    create.set_defaults(func=guarded(cmd_keys_create))
    listing = keys_sub.add_parser("list", help="every stored key's id, tenant and state")
    add_config(listing)
    listing.set_defaults(func=guarded(cmd_keys_list))
    revoke = keys_sub.add_parser("revoke", help="stop a key (running proxies within seconds)")
    add_config(revoke)
    revoke.add_argument("key_id", help="the key's id, as create and list print it (key_...)")
    revoke.set_defaults(func=guarded(cmd_keys_revoke))
