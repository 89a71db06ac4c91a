"""PostgreSQL: one database shared by many server replicas and agent processes.

The semantics are the SQLite store's (see :mod:`signoff.stores.base`); what changes is how
writers that run in different processes are kept in line.

**One writer at a time.** Every write transaction starts by taking a transaction-scoped
advisory lock, :data:`WRITE_LOCK`, held until it commits. Appending to the audit chain needs
the previous event's hash, so without the lock two replicas could both append after the
same event and fork the chain. The lock has a second effect that the live events rely on:
ids come from identity columns and are drawn under the lock, and PostgreSQL makes a
transaction visible before it releases its locks, so events become visible in id order. A
reader (an SSE replay, another replica's bus) that has seen event *n* will never later find
a committed event with an id below *n*. (Ids may still skip a number where a transaction
rolled back; readers treat a gap as "read the store", never as a loss.) A transition also
locks its row (``SELECT … FOR UPDATE``); under the advisory lock that is belt and braces.

**Wake-ups.** A trigger on ``events`` runs ``pg_notify('signoff_events', id)`` in the
writing transaction; PostgreSQL delivers it on commit, in commit order. The bus
(:class:`signoff.bus.postgres.PostgresBus`) listens on a dedicated connection and reads the
events themselves from this store.

**Sweep leadership.** Each replica's sweeper asks :meth:`PostgresStore.is_sweep_leader`;
the one whose dedicated session holds the session-level advisory lock :data:`SWEEP_LOCK`
sweeps, the others look again later. When the leader stops or its connection dies, the lock
goes with the session and the next replica to ask takes over.

**Bodies are text.** A request is stored as the JSON text it was written as, like SQLite's:
``jsonb`` would re-write numbers (changing the digest an approval is bound to) and refuse
``\\u0000``. Timestamps are ``timestamptz``.

**Why psycopg 3 rather than asyncpg.** psycopg is fully typed (the package is checked with
strict mypy and asyncpg ships no types), takes named parameters (``%(name)s``), which keeps
the named queries in ``sql/postgres/queries.sql`` readable, has pipeline mode, which sends
a transaction's writes in one round trip while the write lock is held, and reads
notifications from a plain connection with ``notifies()``. asyncpg is faster per query, but
a round trip here is dominated by the commit and by Python, not by the driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from signoff.audit import GENESIS, AuditEntry, AuditEvent, iso, seal
from signoff.errors import ConfigError, MissingDependency, NotFound, StoreError
from signoff.events import Event
from signoff.models import ApprovalRequest, Page, RunRecord
from signoff.stores import sql
from signoff.stores.base import (
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

try:
    import psycopg
    from psycopg import sql as pgsql
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:
    raise MissingDependency("psycopg", "postgres") from exc

__all__ = ["SWEEP_LOCK", "WRITE_LOCK", "PostgresStore", "migrate"]

_Q = sql.queries("postgres")

# Advisory lock keys: one 64-bit number each, per database. "signoff" in ASCII, then a byte.
#: serializes every write (the audit chain's appends, and so the order of live event ids)
WRITE_LOCK = 0x7369676E6F666601
#: serializes migrations, so that replicas starting together migrate once
MIGRATION_LOCK = 0x7369676E6F666602
#: held by the one replica whose sweeper expires overdue requests
SWEEP_LOCK = 0x7369676E6F666603

Connection = psycopg.AsyncConnection[Any]
Cursor = psycopg.AsyncCursor[Any]
#: makes a connection of its own (outside the pool), for what belongs to a session
Connect = Callable[[], Awaitable[Connection]]


class PostgresStore(Store):
    """A store on a psycopg connection pool.

    ``pool`` is ready to use: opened, and closed, by whoever made it; its connections may be
    in autocommit mode or not. ``connect`` makes the connections that belong to one session
    (the migration, the bus's LISTEN, the sweep lock); by default, ones like the pool's.
    :meth:`from_url` makes a store that owns its pool.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], *, connect: Connect | None = None) -> None:
        self.pool = pool
        self._connect = connect
        #: set by from_url: the store then owns its pool, and makes a new one to reopen
        self._make_pool: Callable[[], AsyncConnectionPool[Any]] | None = None
        self._parsed = ParsedRequests()
        self._opened = False
        self._sweep_conn: Connection | None = None
        self._leading = False

    @classmethod
    def from_url(cls, url: str, *, min_size: int = 2, max_size: int = 10) -> PostgresStore:
        """``postgresql://user:password@host:port/dbname?sslmode=…`` (or ``postgres://``):
        any libpq connection URL. The store makes and owns a pool of ``min_size`` to
        ``max_size`` connections, opened by :meth:`open` and closed by :meth:`close`."""

        def make_pool() -> AsyncConnectionPool[Any]:
            return AsyncConnectionPool(
                url,
                open=False,
                min_size=min_size,
                max_size=max_size,
                kwargs={"autocommit": True},
                name="signoff",
            )

        store = cls(make_pool())
        store._make_pool = make_pool
        return store

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate (on a connection of its own, so that a wrong address fails at once with
        libpq's reason), then open the pool when the store owns it."""
        if self._opened:
            return
        conn = await self.connect()
        try:
            await migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the PostgreSQL database: {exc}") from exc
        finally:
            await conn.close()
        if self._make_pool is not None:
            try:
                await self.pool.open(wait=True, timeout=15)
            except psycopg.Error as exc:
                await self.pool.close()
                self.pool = self._make_pool()
                raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        self._opened = True

    async def aclose(self) -> None:
        await self._drop_sweep_connection()
        if self._make_pool is not None and self._opened:
            await self.pool.close()
            self.pool = self._make_pool()  # a closed pool cannot be opened again
        self._opened = False
        self._parsed.clear()

    async def connect(self) -> Connection:
        """A new autocommit connection outside the pool; the caller closes it."""
        try:
            if self._connect is not None:
                return await self._connect()
            conninfo, kwargs = self.pool.conninfo, self.pool.kwargs or {}
            if not isinstance(conninfo, str) or not isinstance(kwargs, dict):
                raise ConfigError(
                    "this pool computes its connection settings: pass connect=… to PostgresStore"
                )
            return await psycopg.AsyncConnection.connect(conninfo, **{**kwargs, "autocommit": True})
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    # -- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"postgres: {exc}") from exc

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[Connection]:
        """A transaction that holds :data:`WRITE_LOCK` from its first statement to its
        commit (see the module docstring). Reads inside it see every earlier write."""
        async with self._connection() as conn, conn.transaction():
            # its own statement: each statement reads a fresh snapshot, so the ones after it
            # see what the previous holder of the lock committed
            await conn.execute(_Q["advisory_xact_lock"], {"key": WRITE_LOCK})
            yield conn

    async def _rows(self, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        async with self._connection() as conn:
            cursor = await conn.execute(_Q[name], params)
            return await cursor.fetchall()

    @staticmethod
    async def _append_audit(
        conn: Connection, head: tuple[int | None, str | None], entries: Sequence[AuditEntry]
    ) -> None:
        """Seal ``entries`` after the chain's ``head`` (seq, hash) and insert them. Call it
        under the write lock, with the head read under the same lock."""
        seq, prev = (head[0], head[1]) if head[0] is not None else (0, GENESIS)
        assert prev is not None
        rows = []
        for entry in entries:
            seq += 1
            event = seal(entry, seq, prev)
            prev = event.hash
            rows.append(
                {
                    "seq": seq,
                    "request_id": entry.request_id,
                    "record": event.record,
                    "prev_hash": event.prev_hash,
                    "hash": event.hash,
                }
            )
        if rows:
            async with conn.cursor() as cursor:
                await cursor.executemany(_Q["insert_audit"], rows)

    @staticmethod
    async def _insert_events(
        conn: Connection, types: Sequence[str], request_id: str, at: datetime
    ) -> list[Cursor]:
        """Insert live events; their ids are read from the cursors once the pipeline that
        carries the transaction's writes has been sent."""
        return [
            await conn.execute(
                _Q["insert_event"], {"type": type_, "request_id": request_id, "at": at}
            )
            for type_ in types
        ]

    @staticmethod
    async def _inserted_events(
        cursors: Sequence[Cursor], types: Sequence[str], request: ApprovalRequest, at: datetime
    ) -> list[Event]:
        stamp = iso(at)
        return [
            Event((await _one(cursor))[0], type_, request.id, stamp, request)
            for type_, cursor in zip(types, cursors, strict=True)
        ]

    # -- Store ----------------------------------------------------------------------------

    async def create(
        self, request: ApprovalRequest, audit: AuditEntry, events: Sequence[str]
    ) -> Created:
        body = request.model_dump_json()
        async with self._locked() as conn:
            cursor = await conn.execute(
                _Q["idempotent_twin_and_audit_head"],
                {"idempotency_key": request.idempotency_key},
            )
            twin, *head = await _one(cursor)
            if twin is not None:
                return Created(self._parsed.parse(twin), created=False)
            # the writes go in one round trip (a pipeline) while the write lock is held
            async with conn.pipeline():
                await conn.execute(
                    _Q["insert_request"],
                    {
                        "id": request.id,
                        "status": request.status.value,
                        "tool": request.tool,
                        "agent_id": request.run.agent_id,
                        "requested_by": request.requested_by,
                        "risk": request.risk.value,
                        "idempotency_key": request.idempotency_key,
                        "created_at": request.created_at,
                        "expires_at": request.expires_at,
                        "body": body,
                    },
                )
                await self._append_audit(conn, (head[0], head[1]), [audit])
                inserted = await self._insert_events(conn, events, request.id, audit.at)
            emitted = await self._inserted_events(inserted, events, request, audit.at)
        self._parsed.remember(request, body)
        return Created(request, True, emitted)

    async def get(self, request_id: str) -> ApprovalRequest | None:
        rows = await self._rows("get_request", {"id": request_id})
        return self._parsed.parse(rows[0][0], request_id) if rows else None

    async def list_requests(self, query: ListQuery) -> Page:
        conditions = [
            pgsql.SQL("{} = {}").format(pgsql.Identifier(column), pgsql.Placeholder(column))
            for column, _ in query.filters()
        ]
        params: dict[str, Any] = dict(query.filters())
        params["limit"] = query.limit + 1
        if query.cursor:
            conditions.append(pgsql.SQL("seq < {}").format(pgsql.Placeholder("before")))
            params["before"] = decode_cursor(query.cursor)
        where = pgsql.SQL("WHERE ") + pgsql.SQL(" AND ").join(conditions)
        statement = pgsql.SQL(_Q["list_requests"]).format(
            where=where if conditions else pgsql.SQL("")
        )
        async with self._connection() as conn:
            rows = await (await conn.execute(statement, params)).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = [self._parsed.parse(body) for _, body in rows]
        return Page(items=items, next_cursor=encode_cursor(rows[-1][0]) if more and rows else None)

    async def transition(self, request_id: str, fn: TransitionFn) -> Transitioned:
        async with self._locked() as conn:
            cursor = await conn.execute(_Q["request_for_update_and_audit_head"], {"id": request_id})
            row = await cursor.fetchone()
            if row is None:
                raise NotFound(f"no approval request {request_id}")
            body, *head = row
            current = self._parsed.parse(body, request_id)
            change = fn(current)
            events: list[Event] = []
            if change.request is not None:
                check_audited(change)
                new_body = change.request.model_dump_json()
                at = change.audit[-1].at
                async with conn.pipeline():
                    await conn.execute(
                        _Q["update_request"],
                        {"id": request_id, "status": change.request.status.value, "body": new_body},
                    )
                    await self._append_audit(conn, (head[0], head[1]), change.audit)
                    inserted = await self._insert_events(conn, change.events, request_id, at)
                events = await self._inserted_events(inserted, change.events, change.request, at)
                self._parsed.remember(change.request, new_body)
            elif change.audit:
                await self._append_audit(conn, (head[0], head[1]), change.audit)
        if change.error is not None:
            raise change.error
        return Transitioned(change.request or current, events)

    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        rows = await self._rows("due_for_expiry", {"now": now, "limit": limit})
        return [row[0] for row in rows]

    async def next_expiry(self) -> datetime | None:
        rows = await self._rows("next_expiry")
        return None if rows[0][0] is None else _utc(rows[0][0])

    async def append_audit(self, entry: AuditEntry) -> None:
        async with self._locked() as conn:
            head = await (await conn.execute(_Q["audit_head"])).fetchone()
            await self._append_audit(conn, head or (None, None), [entry])

    async def audit_events(
        self, *, request_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        params: dict[str, Any] = {"after": after_seq, "limit": limit}
        name = "audit_all"
        if request_id is not None:
            name, params["request_id"] = "audit_for_request", request_id
        rows = await self._rows(name, params)
        return [AuditEvent(record, prev_hash, hash_) for record, prev_hash, hash_ in rows]

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        rows = await self._rows("events_after", {"after": after_id, "limit": limit})
        return [
            Event(id_, type_, request_id, iso(_utc(at)), self._parsed.parse(body, request_id))
            for id_, type_, request_id, at, body in rows
        ]

    async def last_event_id(self) -> int:
        rows = await self._rows("last_event_id")
        return int(rows[0][0])

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._rows("count_by_status")
        return {status: int(count) for status, count in rows}

    async def save_run(self, record: RunRecord) -> None:
        # runs are not audited and emit no events, so they need no write lock
        params = {
            "run_id": record.run_id,
            "owner": record.owner,
            "status": record.status,
            "updated_at": record.updated_at,
            "body": record.model_dump_json(),
        }
        async with self._connection() as conn:
            await conn.execute(_Q["save_run"], params)

    async def get_run(self, owner: str, run_id: str) -> RunRecord | None:
        rows = await self._rows("get_run", {"owner": owner, "run_id": run_id})
        return RunRecord.model_validate_json(rows[0][0]) if rows else None

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        rows = await self._rows("list_runs", query.params())
        return [RunRecord.model_validate_json(row[0]) for row in rows]

    async def spend(self, key: str, until: datetime) -> bool:
        # not audited and no events: no write lock; the primary key settles races
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_Q["purge_spent"])
            cursor = await conn.execute(_Q["spend"], {"key": key, "until": _utc(until)})
            return cursor.rowcount == 1

    async def is_spent(self, key: str) -> bool:
        return bool(await self._rows("is_spent", {"key": key}))

    # -- sweep leadership -----------------------------------------------------------------

    async def is_sweep_leader(self) -> bool:
        """Whether this replica holds :data:`SWEEP_LOCK`, taking it when it is free. The
        lock belongs to a dedicated session, so it is released when that session ends."""
        try:
            if self._sweep_conn is None:
                self._leading = False
                self._sweep_conn = await self.connect()
            if self._leading:
                # the session is still there, so the lock still is
                await self._sweep_conn.execute(_Q["alive"])
            else:
                cursor = await self._sweep_conn.execute(
                    _Q["try_advisory_lock"], {"key": SWEEP_LOCK}
                )
                self._leading = bool((await _one(cursor))[0])
        except (psycopg.Error, StoreError):
            await self._drop_sweep_connection()
        return self._leading

    async def _drop_sweep_connection(self) -> None:
        conn, self._sweep_conn, self._leading = self._sweep_conn, None, False
        if conn is not None:
            await conn.close()


async def migrate(conn: Connection) -> int:
    """Apply pending migrations in one transaction; returns the schema version.

    A transaction-scoped advisory lock makes replicas that start together migrate once: the
    second waits for the first to commit, then finds nothing left to do.
    """
    known = sql.migrations("postgres")
    async with conn.transaction():
        await conn.execute(_Q["advisory_xact_lock"], {"key": MIGRATION_LOCK})
        await conn.execute(_Q["migrations_table"])
        version = int((await _one(await conn.execute(_Q["schema_version"])))[0])
        if version > len(known):
            raise StoreError(
                f"the database is at schema version {version}, newer than this signoff "
                f"({len(known)}); upgrade signoff"
            )
        for migration in known[version:]:
            # no parameters: sent as one simple query, so a file may hold many statements
            await conn.execute(migration.sql)
            await conn.execute(
                _Q["record_migration"], {"version": migration.version, "name": migration.name}
            )
            version = migration.version
    return version


async def _one(cursor: Cursor) -> Any:
    row = await cursor.fetchone()
    if row is None:
        raise StoreError("postgres: a query that returns one row returned none")
    return row


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
