"""The embedded default: one SQLite file in WAL mode.

Each operation is a short synchronous transaction on the event loop's thread. That is
deliberate: a write here takes tens of microseconds, far less than handing it to a worker
thread and back, and because a transaction never awaits, no other task can interleave with
it. ``BEGIN IMMEDIATE`` takes SQLite's write lock before reading, which makes every
transition a compare-and-set across processes too.

Durability: ``synchronous=NORMAL`` (the default here) in WAL mode loses nothing when the
process is killed, even with ``kill -9``: a committed transaction is in the WAL file, in the
operating system's cache, before ``COMMIT`` returns. Only a power cut or a kernel crash can
lose the last commits. ``sqlite:///path.db?synchronous=full`` makes every commit wait for
the disk as well, at a few times the cost per write.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from signoff.audit import GENESIS, AuditEntry, AuditEvent, iso, seal
from signoff.errors import ConfigError, NotFound, StoreError
from signoff.events import Event
from signoff.models import ApprovalRequest, Page, RunRecord
from signoff.stores import sql
from signoff.stores.base import (
    Change,
    Created,
    ListQuery,
    RunQuery,
    Store,
    Transitioned,
    TransitionFn,
    check_audited,
    decode_cursor,
    encode_cursor,
)
from signoff.stores.cache import ParsedRequests

T = TypeVar("T")

_Q = sql.queries("sqlite")
_SYNCHRONOUS = {"off", "normal", "full", "extra"}
#: how often the background thread moves the WAL into the database file
CHECKPOINT_INTERVAL_S = 0.05
#: the WAL file is cut back to this size when it restarts
_WAL_SIZE_LIMIT = 8 * 1024 * 1024


class _Checkpointer(threading.Thread):
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


def _create_private(path: Path) -> None:
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


class SqliteStore(Store):
    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "normal") -> None:
        if synchronous.lower() not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        self.path = str(path)
        self.synchronous = synchronous.lower()
        self._conn: sqlite3.Connection | None = None
        # a store may be shared by the loop and a thread (a sync tool, a CLI helper)
        self._lock = threading.RLock()
        self._parsed = ParsedRequests()
        self._checkpointer: _Checkpointer | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        params = parse_qs(urlsplit(url).query)
        synchronous = params.get("synchronous", ["normal"])[0]
        return cls(path_from_url(url), synchronous=synchronous)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            _create_private(Path(self.path))
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        if self.path != ":memory:":
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
            self._checkpointer = _Checkpointer(self.path, self._lock)
            self._checkpointer.start()
        self._conn = conn

    async def aclose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop.set()
            self._checkpointer.join()
            self._checkpointer = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._parsed.clear()

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError("the store is not open")
            try:
                if not write:
                    return fn(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: {exc}") from exc

    @staticmethod
    def _append_audit(conn: sqlite3.Connection, entry: AuditEntry) -> None:
        head = conn.execute(_Q["audit_head"]).fetchone()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        event = seal(entry, seq, prev)
        conn.execute(
            _Q["insert_audit"],
            {
                "seq": seq,
                "request_id": entry.request_id,
                "record": event.record,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            },
        )

    @staticmethod
    def _emit(
        conn: sqlite3.Connection, types: Sequence[str], request: ApprovalRequest, at: datetime
    ) -> list[Event]:
        out = []
        stamp = iso(at)
        for type_ in types:
            cur = conn.execute(
                _Q["insert_event"], {"type": type_, "request_id": request.id, "at": stamp}
            )
            assert cur.lastrowid is not None
            out.append(Event(cur.lastrowid, type_, request.id, stamp, request))
        return out

    # -- Store --------------------------------------------------------------------------

    async def create(
        self, request: ApprovalRequest, audit: AuditEntry, events: Sequence[str]
    ) -> Created:
        body = request.model_dump_json()

        def write(conn: sqlite3.Connection) -> Created:
            try:
                conn.execute(
                    _Q["insert_request"],
                    {
                        "id": request.id,
                        "status": request.status.value,
                        "tool": request.tool,
                        "agent_id": request.run.agent_id,
                        "requested_by": request.requested_by,
                        "risk": request.risk.value,
                        "idempotency_key": request.idempotency_key,
                        "created_at": iso(request.created_at),
                        "expires_at": request.expires_at.timestamp(),
                        "body": body,
                    },
                )
            except sqlite3.IntegrityError:
                # the common case inserts straight away; a reused key is the rare one
                if request.idempotency_key is None:
                    raise
                row = conn.execute(
                    _Q["get_request_by_key"], {"idempotency_key": request.idempotency_key}
                ).fetchone()
                if row is None:
                    raise
                return Created(self._parsed.parse(row[0]), created=False)
            self._append_audit(conn, audit)
            return Created(request, True, self._emit(conn, events, request, audit.at))

        created = self._run(write, write=True)
        if created.created:
            self._parsed.remember(request, body)
        return created

    async def get(self, request_id: str) -> ApprovalRequest | None:
        row = self._run(
            lambda c: c.execute(_Q["get_request"], {"id": request_id}).fetchone(), write=False
        )
        return None if row is None else self._parsed.parse(row[0], request_id)

    async def list_requests(self, query: ListQuery) -> Page:
        where: list[str] = []
        params: dict[str, Any] = {"limit": query.limit + 1}
        for column, value in query.filters():
            where.append(f"{column} = :{column}")
            params[column] = value
        if query.cursor:
            where.append("seq < :before")
            params["before"] = decode_cursor(query.cursor)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # the column names come from ListQuery.filters: fixed strings, never caller input
        statement = f"SELECT seq, body FROM requests {clause} ORDER BY seq DESC LIMIT :limit"
        rows = self._run(lambda c: c.execute(statement, params).fetchall(), write=False)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = [self._parsed.parse(body) for _, body in rows]
        return Page(items=items, next_cursor=encode_cursor(rows[-1][0]) if more and rows else None)

    async def transition(self, request_id: str, fn: TransitionFn) -> Transitioned:
        def write(conn: sqlite3.Connection) -> tuple[Change, ApprovalRequest, list[Event]]:
            row = conn.execute(_Q["get_request"], {"id": request_id}).fetchone()
            if row is None:
                raise NotFound(f"no approval request {request_id}")
            current = self._parsed.parse(row[0], request_id)
            change = fn(current)
            events: list[Event] = []
            if change.request is not None:
                check_audited(change)
                body = change.request.model_dump_json()
                conn.execute(
                    _Q["update_request"],
                    {"id": request_id, "status": change.request.status.value, "body": body},
                )
                events = self._emit(conn, change.events, change.request, change.audit[-1].at)
                self._parsed.remember(change.request, body)
            for entry in change.audit:
                self._append_audit(conn, entry)
            return change, change.request or current, events

        change, request, events = self._run(write, write=True)
        if change.error is not None:
            raise change.error
        return Transitioned(request, events)

    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        rows = self._run(
            lambda c: c.execute(
                _Q["due_for_expiry"], {"now": now.timestamp(), "limit": limit}
            ).fetchall(),
            write=False,
        )
        return [row[0] for row in rows]

    async def next_expiry(self) -> datetime | None:
        row = self._run(lambda c: c.execute(_Q["next_expiry"]).fetchone(), write=False)
        if row is None or row[0] is None:
            return None
        from signoff._util import to_datetime

        return to_datetime(row[0])

    async def append_audit(self, entry: AuditEntry) -> None:
        self._run(lambda c: self._append_audit(c, entry), write=True)

    async def audit_events(
        self, *, request_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        params: dict[str, Any] = {"after": after_seq, "limit": -1 if limit is None else limit}
        if request_id is None:
            statement = _Q["audit_all"]
        else:
            statement, params["request_id"] = _Q["audit_for_request"], request_id
        rows = self._run(lambda c: c.execute(statement, params).fetchall(), write=False)
        return [AuditEvent(record, prev_hash, hash_) for record, prev_hash, hash_ in rows]

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        rows = self._run(
            lambda c: c.execute(_Q["events_after"], {"after": after_id, "limit": limit}).fetchall(),
            write=False,
        )
        return [
            Event(row[0], row[1], row[2], row[3], self._parsed.parse(row[4], row[2]))
            for row in rows
        ]

    async def last_event_id(self) -> int:
        row = self._run(lambda c: c.execute(_Q["last_event_id"]).fetchone(), write=False)
        return int(row[0])

    async def save_run(self, record: RunRecord) -> None:
        params = {
            "run_id": record.run_id,
            "owner": record.owner,
            "status": record.status,
            "updated_at": iso(record.updated_at),
            "body": record.model_dump_json(),
        }
        self._run(lambda c: c.execute(_Q["save_run"], params), write=True)

    async def get_run(self, owner: str, run_id: str) -> RunRecord | None:
        params = {"owner": owner, "run_id": run_id}
        row = self._run(lambda c: c.execute(_Q["get_run"], params).fetchone(), write=False)
        return None if row is None else RunRecord.model_validate_json(row[0])

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        params = query.params()
        rows = self._run(lambda c: c.execute(_Q["list_runs"], params).fetchall(), write=False)
        return [RunRecord.model_validate_json(row[0]) for row in rows]

    async def spend(self, key: str, until: datetime) -> bool:
        now = time.time()

        def write(conn: sqlite3.Connection) -> bool:
            conn.execute(_Q["purge_spent"], {"now": now})
            cursor = conn.execute(_Q["spend"], {"key": key, "until": until.timestamp()})
            return cursor.rowcount == 1

        return self._run(write, write=True)

    async def is_spent(self, key: str) -> bool:
        params = {"key": key, "now": time.time()}
        row = self._run(lambda c: c.execute(_Q["is_spent"], params).fetchone(), write=False)
        return row is not None

    async def count_by_status(self) -> dict[str, int]:
        rows = self._run(lambda c: c.execute(_Q["count_by_status"]).fetchall(), write=False)
        return {status: int(count) for status, count in rows}


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
        current = conn.execute("SELECT coalesce(max(version), 0) FROM signoff_migrations")
        version = int(current.fetchone()[0])
        known = sql.migrations("sqlite")
        if version > len(known):
            raise StoreError(
                f"the database is at schema version {version}, newer than this signoff "
                f"({len(known)}); upgrade signoff"
            )
        for migration in known[version:]:
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO signoff_migrations (version, name, applied_at) "
                "VALUES (?, ?, datetime('now'))",
                (migration.version, migration.name),
            )
            version = migration.version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version
