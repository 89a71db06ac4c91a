"""Stores, chosen by URL scheme. Importing this package imports no optional driver."""

from __future__ import annotations

from signoff.errors import ConfigError
from signoff.stores.base import Store

__all__ = ["Store", "store_from_url"]


def store_from_url(url: str) -> Store:
    """``memory://`` · ``sqlite:///relative.db`` · ``sqlite:////absolute.db`` ·
    ``postgresql://user:password@host:port/dbname`` (or ``postgres://``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        from signoff.stores.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from signoff.stores.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if scheme in ("postgres", "postgresql"):
        from signoff.stores.postgres import PostgresStore

        return PostgresStore.from_url(url)
    raise ConfigError(
        f"unsupported store URL {url!r}: use sqlite:///path.db, postgresql://… or memory://"
    )
