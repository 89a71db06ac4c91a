"""The embedded default: one SQLite file in WAL mode.

Writes go through :class:`~signoff.stores.group_commit.GroupCommit`: concurrent writers share
one transaction, and each caller is answered after the commit that made its write durable.
``BEGIN IMMEDIATE`` takes SQLite's write lock before anything is read, so each write's
compare-and-set holds across processes too. Reads run on a connection of their own, on the
caller's thread: a read never waits for a write (WAL) and never sees one that has not
committed.

Audit positions are SQLite row ids: one writer at a time makes them increase in commit
order, so every committed event is final, and a write knows the position just before its
first event (:attr:`Event.prev`), which lets a live stream take it without reading back.

Durability: ``synchronous=NORMAL`` (the default here) in WAL mode loses nothing when the
process is killed, even with ``kill -9``: a committed transaction is in the WAL file, in the
operating system's cache, before ``COMMIT`` returns. Only a power cut or a kernel crash can
lose the last commits. ``sqlite:///path.db?synchronous=full`` makes every commit wait for
the disk as well, at a few times the cost per write.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from signoff._util import to_datetime
from signoff.audit import AuditEntry, AuditEvent, Checkpoint, Link, iso
from signoff.errors import ConfigError, NotFound, StoreError
from signoff.events import Event
from signoff.models import ApprovalRequest, Page
from signoff.stores import sql
from signoff.stores.base import (
    Applied,
    Change,
    Created,
    ListQuery,
    SealedRow,
    Stale,
    Store,
    StoredEvent,
    Versioned,
    audit_event,
    decode_cursor,
    encode_cursor,
    live_events,
    mismatch,
    parse_or_none,
)
from signoff.stores.cache import ParsedRequests
from signoff.stores.group_commit import GroupCommit, Tx
from signoff.stores.outbox import NewDelivery
from signoff.stores.own_writes import OwnWrites
from signoff.stores.sqlite_devices import SqliteDevices
from signoff.stores.sqlite_files import Checkpointer, create_private, migrate, path_from_url
from signoff.stores.sqlite_grants import SqliteGrants, insert_grant
from signoff.stores.sqlite_history import SqliteHistory
from signoff.stores.sqlite_outbox import SqliteOutbox, insert_deliveries
from signoff.stores.sqlite_runs import SqliteRuns

T = TypeVar("T")

_Q = sql.queries("sqlite")
_SYNCHRONOUS = {"off", "normal", "full", "extra"}

__all__ = ["SqliteStore", "migrate", "path_from_url"]


class SqliteStore(SqliteOutbox, SqliteDevices, SqliteGrants, SqliteHistory, SqliteRuns, Store):
    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "normal") -> None:
        if synchronous.lower() not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        self.path = str(path)
        self.synchronous = synchronous.lower()
        self.data_dir = None if self.path == ":memory:" else Path(self.path).resolve().parent
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # the writer connection: the flush (on the loop or the writer thread), the WAL
        # checkpointer; the reader: any thread that reads (a sync tool, a CLI helper)
        self._write_lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._parsed = ParsedRequests()
        self._checkpointer: Checkpointer | None = None
        self._commits: GroupCommit | None = None
        self._own = OwnWrites()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        params = parse_qs(urlsplit(url).query)
        synchronous = params.get("synchronous", ["normal"])[0]
        return cls(path_from_url(url), synchronous=synchronous)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._writer is not None:
            return
        memory = self.path == ":memory:"
        if not memory:
            create_private(Path(self.path))
        try:
            writer = self._open()
            mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and not memory:
                raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
            writer.execute(f"PRAGMA synchronous = {self.synchronous}")
            migrate(writer)
            # an in-memory database exists once per connection: reads share the writer's
            reader = writer if memory else self._open()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        if not memory:
            self._checkpointer = Checkpointer.start_for(writer, self.path, self._write_lock)
        self._writer, self._reader = writer, reader
        self._commits = GroupCommit(writer, self._write_lock)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def aclose(self) -> None:
        if self._commits is not None:
            await self._commits.drain()
            self._commits.close()
            self._commits = None
        if self._checkpointer is not None:
            self._checkpointer.finish()
            self._checkpointer = None
        with self._write_lock, self._read_lock:
            for conn in {id(c): c for c in (self._reader, self._writer) if c}.values():
                conn.close()
            self._writer = self._reader = None
            self._parsed.clear()

    # -- plumbing -------------------------------------------------------------------------

    async def _write(self, work: Callable[[Tx], T]) -> T:
        if self._commits is None:
            raise StoreError("the store is not open")
        return await self._commits.submit(work)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        lock = self._write_lock if self._reader is self._writer else self._read_lock
        with lock:
            conn = self._reader
            if conn is None:
                raise StoreError("the store is not open")
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: {exc}") from exc

    def _rows(self, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self._read(lambda c: c.execute(_Q[name], params or {}).fetchall())

    @staticmethod
    def _append(
        tx: Tx, entries: list[AuditEntry], records: list[str], into: list[int] | None = None
    ) -> list[int]:
        """Append ``entries``; their positions. A position is the table's rowid, which SQLite
        gives as one more than the largest so far (no AUTOINCREMENT; the table is append-only),
        so the first position less one is the newest event before them: the ``prev`` of the
        live events they stream, without reading it."""
        positions = []
        for entry, record in zip(entries, records, strict=True):
            cursor = tx.conn.execute(
                _Q["insert_audit"],
                {
                    "request_id": entry.request_id,
                    "type": entry.type,
                    "state": entry.state,
                    "live": entry.live,
                    "at": entry.at_text,
                    "record": record,
                },
            )
            assert cursor.lastrowid is not None
            positions.append(cursor.lastrowid)
        if into is not None:
            into.extend(positions)
        return positions

    def own_through(self, after: int) -> int:
        """See :meth:`OwnWrites.through` (the polling bus's tail asks)."""
        return self._own.through(after)

    def _versioned(self, row: tuple[int, str], request_id: str) -> Versioned:
        version, body = row
        return Versioned(self._parsed.parse(body, version, request_id), version)

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self,
        request: ApprovalRequest,
        audit: AuditEntry,
        deliveries: Sequence[NewDelivery] = (),
    ) -> Created:
        created = await self._create(request, [audit], deliveries)
        if created is None:
            raise StoreError("a create without a condition wrote nothing")
        return created

    async def _create(
        self,
        request: ApprovalRequest,
        audit: list[AuditEntry],
        deliveries: Sequence[NewDelivery] = (),
        only_if: Callable[[Tx], bool] | None = None,
    ) -> Created | None:
        """:meth:`create` with several audit events, and a condition checked in the same
        transaction (a grant still live): None, with nothing written, when it fails."""
        body = request.model_dump_json()
        records = [entry.record() for entry in audit]
        params = {
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
        }

        appended: list[int] = []

        def work(tx: Tx) -> tuple[Versioned, bool, list[Event]] | None:
            if only_if is not None and not only_if(tx):
                return None
            try:
                tx.conn.execute(_Q["insert_request"], params)
            except sqlite3.IntegrityError:
                # the common case inserts straight away; a reused key is the rare one
                if request.idempotency_key is None:
                    raise
                row = tx.conn.execute(
                    _Q["get_request_by_key"], {"idempotency_key": request.idempotency_key}
                ).fetchone()
                if row is None:
                    raise
                return Versioned(ApprovalRequest.model_validate_json(row[1]), row[0]), False, []
            insert_deliveries(tx, deliveries)
            positions = self._append(tx, audit, records, appended)
            return (
                Versioned(request, 1),
                True,
                live_events(audit, positions, request, positions[0] - 1, body),
            )

        written = await self._write(work)
        self._own.add(appended)
        if written is None:
            return None
        current, created, events = written
        if created:
            self._parsed.remember(request, body, 1)
        return Created(current.request, created, events)

    def request_json(self, request: ApprovalRequest) -> str:
        return self._parsed.json_of(request)

    async def _for_write(self, request_id: str) -> Versioned:
        cached = self._parsed.versioned(request_id)
        if cached is not None:
            return cached
        row = self._read(lambda c: c.execute(_Q["get_request"], {"id": request_id}).fetchone())
        if row is None:
            raise NotFound(f"no approval request {request_id}")
        return self._versioned(row, request_id)

    async def _apply(self, base: Versioned, change: Change, expects: str) -> Applied | Stale:
        request_id = base.request.id
        new = change.request
        body = None if new is None else new.model_dump_json()
        records = [entry.record() for entry in change.audit]

        appended: list[int] = []

        def work(tx: Tx) -> _Written | _Moved:
            conn = tx.conn
            if body is None:
                # a refusal: appended only if the row is still the one it was computed from
                row = conn.execute(_Q["get_request"], {"id": request_id}).fetchone()
                if row is None:
                    raise NotFound(f"no approval request {request_id}")
                if row[0] != base.version:
                    return _Moved(*row)
                version = base.version
            else:
                params = {"id": request_id, "version": base.version, "body": body}
                params["status"], params["expects"] = new.status.value if new else "", expects
                if conn.execute(_Q["update_request"], params).rowcount == 0:
                    row = conn.execute(_Q["get_request"], {"id": request_id}).fetchone()
                    if row is None:
                        raise NotFound(f"no approval request {request_id}")
                    if row[0] != base.version:
                        return _Moved(*row)
                    logged = conn.execute(_Q["logged_state"], {"id": request_id}).fetchone()
                    raise mismatch(request_id, expects, None if logged is None else logged[0])
                version = base.version + 1
                insert_deliveries(tx, change.deliveries)
                insert_grant(tx, change.grant)
            positions = self._append(tx, change.audit, records, appended)
            return _Written(version, positions, positions[0] - 1 if positions else 0)

        try:
            outcome = await self._write(work)
        except NotFound:
            self._parsed.forget(request_id)
            raise
        self._own.add(appended)
        if isinstance(outcome, _Moved):
            return Stale(self._versioned((outcome.version, outcome.body), request_id))
        if new is None or body is None:
            return Applied(base, [])
        self._parsed.remember(new, body, outcome.version)
        events = live_events(change.audit, outcome.positions, new, outcome.prev, body)
        return Applied(Versioned(new, outcome.version), events)

    async def append_audit(self, entry: AuditEntry) -> None:
        records = [entry.record()]
        appended: list[int] = []

        def work(tx: Tx) -> None:
            self._append(tx, [entry], records, appended)

        await self._write(work)
        self._own.add(appended)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRequest | None:
        row = self._read(lambda c: c.execute(_Q["get_request"], {"id": request_id}).fetchone())
        return None if row is None else self._versioned(row, request_id).request

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
        statement = (
            f"SELECT seq, id, version, body FROM requests {clause} ORDER BY seq DESC LIMIT :limit"
        )
        rows = self._read(lambda c: c.execute(statement, params).fetchall())
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = [self._parsed.parse(body, version, id_) for _, id_, version, body in rows]
        return Page(items=items, next_cursor=encode_cursor(rows[-1][0]) if more and rows else None)

    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        rows = self._rows("due_for_expiry", {"now": now.timestamp(), "limit": limit})
        return [row[0] for row in rows]

    async def next_expiry(self) -> datetime | None:
        rows = self._rows("next_expiry")
        return None if not rows or rows[0][0] is None else to_datetime(rows[0][0])

    async def audit_events(
        self, *, request_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        params: dict[str, Any] = {"after": after, "limit": -1 if limit is None else limit}
        name = "audit_all"
        if request_id is not None:
            name, params["request_id"] = "audit_for_request", request_id
        return [audit_event(row) for row in self._rows(name, params)]

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        rows = self._rows("events_after", {"after": after_id, "limit": limit})
        events, prev = [], after_id
        for position, live, request_id, at, version, body in rows:
            request = self._parsed.parse(body, version, request_id)
            events.append(Event(position, live, request_id, at, request, prev, body))
            prev = position
        return events

    async def last_event_id(self) -> int:
        return int(self._rows("last_position")[0][0])

    async def count_by_status(self) -> dict[str, int]:
        return {status: int(count) for status, count in self._rows("count_by_status")}

    async def requests_page(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, ApprovalRequest | None, str]]:
        rows = self._rows("requests_page", {"after": after_seq, "limit": limit})
        return [(seq, parse_or_none(body), body) for seq, body in rows]

    # -- sealing --------------------------------------------------------------------------

    async def chain_head(self) -> Link | None:
        rows = self._rows("chain_head")
        return Link(*rows[0]) if rows else None

    async def unsealed(self, after_position: int, limit: int) -> list[StoredEvent]:
        rows = self._rows("unsealed", {"after": after_position, "limit": limit})
        return [StoredEvent(*row) for row in rows]

    async def seal(self, head: Link | None, links: list[Link], checkpoint: Checkpoint) -> bool:
        def work(tx: Tx) -> bool:
            now = tx.conn.execute(_Q["chain_head"]).fetchone()
            if (None if now is None else Link(*now)) != head:
                return False
            tx.conn.executemany(
                _Q["insert_link"],
                [{"seq": k.seq, "position": k.position, "hash": k.hash} for k in links],
            )
            tx.conn.execute(_Q["insert_checkpoint"], checkpoint.to_dict())
            return True

        return await self._write(work)

    async def sealed(self, after_seq: int, limit: int) -> list[SealedRow]:
        rows = self._rows("sealed", {"after": after_seq, "limit": limit})
        return [SealedRow(*row) for row in rows]

    async def checkpoints(self, after_size: int = 0, limit: int = 1000) -> list[Checkpoint]:
        rows = self._rows("checkpoints", {"after": after_size, "limit": limit})
        return [Checkpoint(*row) for row in rows]

    async def unsealed_below(self, position: int, limit: int = 10) -> list[int]:
        rows = self._rows("unsealed_below", {"position": position, "limit": limit})
        return [row[0] for row in rows]


@dataclass(frozen=True, slots=True)
class _Written:
    version: int
    positions: list[int]
    #: the newest position before the first of ``positions``
    prev: int


@dataclass(frozen=True, slots=True)
class _Moved:
    """The row is at another version than the change was computed from."""

    version: int
    body: str
