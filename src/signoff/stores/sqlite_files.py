"""The SQLite store's file: its URL, its mode, its migrations and its WAL checkpoints."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from signoff.errors import ConfigError, StoreError
from signoff.stores import sql

#: how often the background thread moves the WAL into the database file
CHECKPOINT_INTERVAL_S = 0.05
#: the WAL file is cut back to this size when it restarts
_WAL_SIZE_LIMIT = 8 * 1024 * 1024


class Checkpointer(threading.Thread):
    """Checkpoints the WAL from its own connection and thread.

    Left to itself, SQLite checkpoints inside whichever ``COMMIT`` crosses a threshold: on
    the event loop, stalling every waiting call for milliseconds. Here a thread copies the
    WAL into the database without blocking writers (``PASSIVE``), then finishes the last
    few frames while holding the store's write lock, so that the checkpoint is complete and
    the next write restarts the WAL from its beginning. Without that last step, a steady
    stream of writes keeps the checkpoint from ever catching up and the WAL grows forever.
    """

    def __init__(self, path: str, write_lock: threading.RLock) -> None:
        super().__init__(name="signoff-sqlite-checkpoint", daemon=True)
        self.path = path
        self.write_lock = write_lock
        self.stop = threading.Event()

    @classmethod
    def start_for(cls, writer: sqlite3.Connection, path: str, write_lock: threading.RLock) -> Self:
        """Turn the writer's own checkpoints off and start checkpointing ``path``."""
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        checkpointer = cls(path, write_lock)
        checkpointer.start()
        return checkpointer

    def finish(self) -> None:
        self.stop.set()
        self.join()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            while not self.stop.wait(CHECKPOINT_INTERVAL_S):
                with contextlib.suppress(sqlite3.Error):
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > 0:
                        with self.write_lock:
                            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            with contextlib.suppress(sqlite3.Error), self.write_lock:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()


def create_private(path: Path) -> None:
    """Make the database file readable by its owner alone (0600; SQLite gives its WAL and
    shared-memory files the same mode), in a folder made 0700 when it is new. An existing
    file keeps its mode: the operator may have chosen it."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc


def path_from_url(url: str) -> str:
    """``sqlite:///rel/path.db`` → ``rel/path.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigError(f"not a sqlite URL: {url!r}")
    if parts.netloc:
        raise ConfigError(f"{url!r}: write sqlite:///relative.db or sqlite:////absolute.db")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigError(f"{url!r} names no database file")
    return path


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (a trigger body's ``;`` does not split)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {buffer!r}")
    return statements


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations in one transaction; returns the schema version.

    ``BEGIN IMMEDIATE`` makes concurrent openers of a new file migrate it exactly once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS signoff_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {int(r[0]) for r in conn.execute("SELECT version FROM signoff_migrations")}
        for migration in sql.pending(sql.migrations("sqlite"), applied):
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO signoff_migrations (version, name, applied_at) "
                "VALUES (?, ?, datetime('now'))",
                (migration.version, migration.name),
            )
            applied.add(migration.version)
        version = max(applied, default=0)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version
