"""Open a ledger store from its URL."""

from __future__ import annotations

from pathlib import Path

from pricing.ledger.store import LedgerStore
from proxy.errors import ConfigError

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL.

    None for ``sqlite:///:memory:``.
    """
    path = url[len(_SQLITE) :]
    if path == ":memory:":
        return None
    if not path or path.startswith("file:") or "?" in path:
        raise ConfigError([f"ledger url {url!r}: a SQLite ledger needs a file path"])
    return Path(path)


def open_ledger(
    url: str,
    *,
    create: bool = True,
    sqlite_busy_timeout_s: float = 5.0,
    connect_timeout_s: float = 5.0,
) -> LedgerStore:
    """Open (and by default create the schema of) the ledger at ``url``.

    ``sqlite:///rel/path.db`` and ``sqlite:////abs/path.db`` open SQLite in WAL
    mode (``sqlite:///:memory:`` a private in-memory ledger, gone on close); ``postgresql://user@host:port/db`` (libpq URL, query parameters such
    as ``options=-csearch_path%3Dledger`` allowed) opens PostgreSQL.
    """
    if url.startswith(_SQLITE):
        from pricing.ledger.sqlite_store import SqliteLedgerStore

        return SqliteLedgerStore(
            sqlite_path(url), busy_timeout_s=sqlite_busy_timeout_s, create=create
        )
    if url.startswith(_POSTGRES):
        # Imported lazily: psycopg is an optional dependency.
        from pricing.ledger.postgres_store import PostgresLedgerStore

        return PostgresLedgerStore(url, connect_timeout_s=connect_timeout_s, create=create)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ConfigError(
        [f"ledger url: unsupported scheme {scheme!r} (use sqlite:/// or postgresql://)"]
    )
