"""The composition root: the one place where a URL picks a store and a bus.

Stores know nothing of buses and buses nothing of stores; this module pairs them:

- ``memory://``: :class:`MemoryStore`, and :class:`MemoryBus` (this process only);
- ``sqlite:///path.db``: :class:`SqliteStore`, and :class:`PollingBus` (other processes on
  the file, by tailing its events);
- ``postgresql://…``: :class:`PostgresStore`, and :class:`PostgresBus` (other replicas, by
  LISTEN/NOTIFY).

No optional driver is imported before its scheme is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from signoff.bus.base import Bus
from signoff.config import Config, Settings
from signoff.errors import ConfigError, StoreError
from signoff.keys import Keyring
from signoff.stores.base import Store

__all__ = ["Backends", "connect", "data_dir", "signing_keys"]


@dataclass(frozen=True, slots=True)
class Backends:
    """A store and the bus that hears every process writing to it."""

    store: Store
    bus: Bus


def connect(url: str | None = None, *, existing: bool = False) -> Backends:
    """The store and bus for ``url`` (default: ``SIGNOFF_DB``, else the embedded SQLite file):
    ``memory://`` · ``sqlite:///relative.db`` · ``sqlite:////absolute.db`` ·
    ``postgresql://user:password@host:port/dbname`` (or ``postgres://``).

    ``existing``: the store must be there already (a command that only reads it): a SQLite
    file that does not exist is a StoreError, not a new empty database that answers
    "nothing here" to a mistyped path."""
    url = url or Settings.from_env().db_url
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if existing and scheme == "sqlite":
        from signoff.stores.sqlite import path_from_url

        path = path_from_url(url)
        if path != ":memory:" and not Path(path).is_file():
            raise StoreError(f"no database at {path} (check --db or SIGNOFF_DB)")
    if scheme == "memory":
        from signoff.bus.memory import MemoryBus
        from signoff.stores.memory import MemoryStore

        return Backends(MemoryStore(), MemoryBus())
    if scheme == "sqlite":
        from signoff.bus.polling import PollingBus
        from signoff.stores.sqlite import SqliteStore

        # other processes may write to the same file, and SQLite cannot tell this one
        return Backends(SqliteStore.from_url(url), PollingBus())
    if scheme in ("postgres", "postgresql"):
        from signoff.bus.postgres import PostgresBus
        from signoff.stores.postgres import PostgresStore

        store = PostgresStore.from_url(url)
        return Backends(store, PostgresBus(store.connect, name=store.listener))
    raise ConfigError(
        f"unsupported store URL {url!r}: use sqlite:///path.db, postgresql://… or memory://"
    )


def data_dir(db_url: str) -> Path:
    """The folder that holds a store's files (the SQLite file, the server key)."""
    if db_url.startswith("sqlite:"):
        from signoff.stores.sqlite import path_from_url

        path = path_from_url(db_url)
        if path != ":memory:":
            return Path(path).resolve().parent
    return Path(".signoff").resolve()


def signing_keys(
    db_url: str, config: Config, settings: Settings | None = None
) -> Callable[[], Keyring]:
    """The keys that sign and verify the audit log's checkpoints for the store at
    ``db_url``: ``SIGNOFF_SIGNING_KEY`` where set, else the keyring in the store's data
    folder (created once); and the public keys the config trusts besides. Loaded when the
    service starts (after its store opened)."""
    seed = (settings or Settings.from_env()).signing_key

    def load() -> Keyring:
        if db_url.startswith("memory:"):
            return Keyring.ephemeral()
        return Keyring.load(data_dir(db_url), seed=seed, trusted=config.audit.trusted_keys)

    return load
