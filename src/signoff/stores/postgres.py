"""PostgreSQL: one database shared by many server replicas and agent processes.

The semantics are the SQLite store's (see :mod:`signoff.stores.base`); what changes is how
writers in different processes stay in line without waiting for each other.

**No cluster-wide lock.** Each write is one statement in autocommit: a call of a function
(``sql/postgres``) that does the compare-and-set on the request's ``version`` (and checks
that the request's audited events end in the state the change was computed from), appends
the audit events and the deliveries, in one round trip. Writes to one request are serialized by
that row's lock alone; writes to different requests run in parallel on every replica.

**Positions from transaction ids.** An event's position is ``(txid << 8) + n``: the writing
transaction's 64-bit id, and the event's place in it. Transactions commit in any order, so a
reader takes only positions below its snapshot's ``xmin`` (the oldest transaction still
running): everything there has committed or never will, and a transaction that commits late
is never skipped, only waited for. This is the horizon that event stores use to read an
outbox in commit order without a global lock. For one request the order is its commit
order: a transition can only succeed after the previous one committed, and its transaction
draws its id at that update.

**Wake-ups.** After each write commits, ``signoff_events`` is NOTIFYed with its newest
position and the request's id, from a transaction of its own (:mod:`.postgres_notify`: a
NOTIFY inside the write would serialize every write's commit behind one lock). The bus
(:class:`signoff.bus.postgres.PostgresBus`) wakes waiters from the notification and reads
the events themselves below the horizon, in order.

**Leadership.** The sweeper and the sealer run where :meth:`PostgresStore.is_leader` says:
the replica whose dedicated session holds the session-level advisory lock
:data:`LEADER_LOCK`. When the leader stops or its connection dies, the lock goes with the
session and the next replica to ask takes over. ``signoff_seal`` also takes a
transaction-level lock, so two sealers never interleave even while leadership moves.

**Bodies are text.** A request is stored as the JSON text it was written as, like SQLite's:
``jsonb`` would re-write numbers (changing the digest an approval is bound to) and refuse
``\\u0000``. Timestamps are ``timestamptz``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from signoff.audit import AuditEntry, AuditEvent, Checkpoint, Link
from signoff.errors import ConfigError, MissingDependency, NotFound, StoreError
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
    audit_json,
    decode_cursor,
    encode_cursor,
    live_events,
    mismatch,
    parse_or_none,
)
from signoff.stores.cache import ParsedRequests
from signoff.stores.outbox import NewDelivery
from signoff.stores.postgres_devices import PostgresDevices
from signoff.stores.postgres_grants import PostgresGrants
from signoff.stores.postgres_history import PostgresHistory
from signoff.stores.postgres_notify import Notifier
from signoff.stores.postgres_outbox import PostgresOutbox, deliveries_json
from signoff.stores.postgres_runs import PostgresRuns
from signoff.stores.postgres_session import (
    LEADER_LOCK,
    Connect,
    Connection,
    Leadership,
    migrate,
)

try:
    import psycopg
    from psycopg import sql as pgsql
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:
    raise MissingDependency("psycopg", "postgres") from exc

__all__ = ["LEADER_LOCK", "PostgresStore", "migrate"]

_Q = sql.queries("postgres")

#: how long a read of the log waits at most for this process's own last write to be final
READ_OWN_WRITES_S = 2.0


class PostgresStore(
    PostgresOutbox, PostgresDevices, PostgresGrants, PostgresHistory, PostgresRuns, Store
):
    """A store on a psycopg connection pool.

    ``pool`` is ready to use: opened, and closed, by whoever made it; its connections must
    be in autocommit mode (each write is one statement). ``connect`` makes the connections
    that belong to one session (the migration, the bus's LISTEN, the leader's lock); by
    default, ones like the pool's. :meth:`from_url` makes a store that owns its pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, connect: Connect | None = None) -> None:
        self.pool = pool
        self._connect = connect
        #: set by from_url: the store then owns its pool, and makes a new one to reopen
        self._make_pool: Callable[[], AsyncConnectionPool[Any]] | None = None
        self._parsed = ParsedRequests()
        self._opened = False
        self._leadership = Leadership(self.connect)
        #: the newest position this store wrote: its own reads of the log wait for it
        self._written = 0
        self._notifier = Notifier(self._connection)
        self.listener = self._notifier.listener  #: the LISTEN session name for its bus

    @classmethod
    def from_url(cls, url: str, *, min_size: int = 2, max_size: int = 10) -> PostgresStore:
        """``postgresql://user:password@host:port/dbname?sslmode=…`` (or ``postgres://``):
        any libpq connection URL. The store makes and owns a pool of ``min_size`` to
        ``max_size`` connections, opened by :meth:`start` and closed by :meth:`aclose`."""

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
        await self._notifier.drain()
        await self._leadership.release()
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
        # getconn/putconn, not pool.connection(), which commits on the way out: a lock and a
        # wait per statement where the connections are in autocommit (as the store's own)
        try:
            conn = await self.pool.getconn()
            try:
                yield conn
                if not conn.autocommit:
                    await conn.commit()  # a caller's pool: commit, as connection() would
            finally:
                await self.pool.putconn(conn)  # and what an error left open rolls back
        except psycopg.Error as exc:
            raise StoreError(f"postgres: {exc}") from exc

    async def _rows(self, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        async with self._connection() as conn:
            cursor = await conn.execute(_Q[name], params)
            # rownumber is None without a result set; cheaper than building description
            return await cursor.fetchall() if cursor.rownumber is not None else []

    async def _one(self, name: str, params: dict[str, Any]) -> Any:
        rows = await self._rows(name, params)
        if not rows:
            raise StoreError(f"postgres: {name} returned no row")
        return rows[0]

    def _versioned(self, version: int, body: str, request_id: str) -> Versioned:
        return Versioned(self._parsed.parse(body, version, request_id), version)

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self,
        request: ApprovalRequest,
        audit: AuditEntry,
        deliveries: Sequence[NewDelivery] = (),
    ) -> Created:
        params = self._create_params(request, [audit], deliveries)
        created = self._created(request, [audit], await self._one("create", params), params)
        assert created is not None  # only a create that checks grants writes nothing
        return created

    def _create_params(
        self, request: ApprovalRequest, audit: list[AuditEntry], deliveries: Sequence[NewDelivery]
    ) -> dict[str, Any]:
        return {
            "id": request.id,
            "status": request.status.value,
            "tool": request.tool,
            "agent_id": request.run.agent_id,
            "requested_by": request.requested_by,
            "risk": request.risk.value,
            "idempotency_key": request.idempotency_key,
            "created_at": request.created_at,
            "expires_at": request.expires_at,
            "body": request.model_dump_json(),
            "audit": audit_json(audit),
            "deliveries": deliveries_json(deliveries),
            "unless_granted": None,
        }

    def _created(
        self, request: ApprovalRequest, audit: list[AuditEntry], row: Any, params: dict[str, Any]
    ) -> Created | None:
        created, version, twin, positions, prev = row
        if created is None:
            return None  # a live grant names the agent and the tool: nothing was written
        if not created:
            existing = ApprovalRequest.model_validate_json(twin)
            return Created(existing, created=False)
        body = params["body"]
        self._parsed.remember(request, body, version)
        self._wrote(positions, request.id)
        return Created(request, True, live_events(audit, positions, request, prev, body))

    def request_json(self, request: ApprovalRequest) -> str:
        return self._parsed.json_of(request)

    async def _for_write(self, request_id: str) -> Versioned:
        cached = self._parsed.versioned(request_id)
        if cached is not None:
            return cached
        rows = await self._rows("get_request", {"id": request_id})
        if not rows:
            raise NotFound(f"no approval request {request_id}")
        return self._versioned(rows[0][0], rows[0][1], request_id)

    async def _apply(self, base: Versioned, change: Change, expects: str) -> Applied | Stale:
        request_id, new = base.request.id, change.request
        body = None if new is None else new.model_dump_json()
        params: dict[str, Any] = {
            "id": request_id,
            "version": base.version,
            "status": None if new is None else new.status.value,
            "body": body,
            "expects": expects,
            "audit": audit_json(change.audit),
            "deliveries": deliveries_json(change.deliveries),
        }
        outcome, version, found, positions, prev = await self._transition_row(params, change.grant)
        if outcome == "missing":
            self._parsed.forget(request_id)
            raise NotFound(f"no approval request {request_id}")
        if outcome == "stale":
            return Stale(self._versioned(version, found, request_id))
        if outcome == "mismatch":
            self._parsed.forget(request_id)
            raise mismatch(request_id, expects, found)
        self._wrote(positions, None if new is None else request_id)
        if new is None or body is None:
            return Applied(Versioned(base.request, version), [])
        self._parsed.remember(new, body, version)
        # the event just before is known only when no older writer was running (prev);
        # else (None) streams take these events once read back in order
        events = live_events(change.audit, positions, new, prev, body)
        return Applied(Versioned(new, version), events)

    async def append_audit(self, entry: AuditEntry) -> None:
        rows = await self._rows(
            "append", {"request_id": entry.request_id, "audit": audit_json([entry])}
        )
        self._wrote(rows[0][0] if rows else [])

    def _wrote(self, positions: list[int] | None, changed: str | None = None) -> None:
        """``changed``: the request a committed change wrote, for the other processes."""
        if positions:
            self._written = max(self._written, positions[-1])
            if changed is not None:
                self._notifier.post(positions[-1], changed)

    async def settle(self) -> None:
        """Wait (briefly) until the horizon passes this store's newest write, so that a
        process reads its own writes in the log. A write transaction running elsewhere in
        the cluster holds the horizon back for as long as it runs."""
        pause, waited = 0.001, 0.0
        while waited < READ_OWN_WRITES_S:
            if int((await self._rows("horizon"))[0][0]) > self._written:
                return
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.05)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRequest | None:
        rows = await self._rows("get_request", {"id": request_id})
        return self._versioned(rows[0][0], rows[0][1], request_id).request if rows else None

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
        items = [self._parsed.parse(body, version, id_) for _, id_, version, body in rows]
        return Page(items=items, next_cursor=encode_cursor(rows[-1][0]) if more and rows else None)

    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        rows = await self._rows("due_for_expiry", {"now": now, "limit": limit})
        return [row[0] for row in rows]

    async def next_expiry(self) -> datetime | None:
        rows = await self._rows("next_expiry")
        return None if rows[0][0] is None else rows[0][0].astimezone(UTC)

    async def audit_events(
        self, *, request_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        await self.settle()
        params: dict[str, Any] = {"after": after, "limit": limit}
        name = "audit_all"
        if request_id is not None:
            name, params["request_id"] = "audit_for_request", request_id
        return [audit_event(row) for row in await self._rows(name, params)]

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        await self.settle()
        return (await self.events_and_horizon(after_id, limit))[0]

    async def events_and_horizon(self, after_id: int, limit: int = 1000) -> tuple[list[Event], int]:
        """:meth:`events_after`, and the horizon they were read below: when fewer than
        ``limit`` came, a reader has seen everything before the horizon."""
        rows = await self._rows("events_after", {"after": after_id, "limit": limit})
        events, prev = [], after_id
        for _, position, live, request_id, at, version, body in rows:
            if position is None:
                continue
            request = self._parsed.parse(body, version, request_id)
            events.append(Event(position, live, request_id, at, request, prev, body))
            prev = position
        return events, int(rows[0][0]) if rows else 0

    async def last_event_id(self) -> int:
        return max(0, int((await self._rows("horizon"))[0][0]) - 1)

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._rows("count_by_status")
        return {status: int(count) for status, count in rows}

    async def requests_page(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, ApprovalRequest | None, str]]:
        rows = await self._rows("requests_page", {"after": after_seq, "limit": limit})
        return [(seq, parse_or_none(body), body) for seq, body in rows]

    # -- sealing --------------------------------------------------------------------------

    async def chain_head(self) -> Link | None:
        rows = await self._rows("chain_head")
        return Link(*rows[0]) if rows else None

    async def unsealed(self, after_position: int, limit: int) -> list[StoredEvent]:
        rows = await self._rows("unsealed", {"after": after_position, "limit": limit})
        return [StoredEvent(*row) for row in rows]

    async def seal(self, head: Link | None, links: list[Link], checkpoint: Checkpoint) -> bool:
        params = {
            "head_seq": None if head is None else head.seq,
            "head_hash": None if head is None else head.hash,
            "seqs": [k.seq for k in links],
            "positions": [k.position for k in links],
            "hashes": [k.hash for k in links],
            **checkpoint.to_dict(),
        }
        try:
            return bool((await self._one("seal", params))[0])
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                return False  # another sealer committed the same links first
            raise

    async def sealed(self, after_seq: int, limit: int) -> list[SealedRow]:
        rows = await self._rows("sealed", {"after": after_seq, "limit": limit})
        return [SealedRow(*row) for row in rows]

    async def checkpoints(self, after_size: int = 0, limit: int = 1000) -> list[Checkpoint]:
        rows = await self._rows("checkpoints", {"after": after_size, "limit": limit})
        return [Checkpoint(*row) for row in rows]

    async def unsealed_below(self, position: int, limit: int = 10) -> list[int]:
        rows = await self._rows("unsealed_below", {"position": position, "limit": limit})
        return [row[0] for row in rows]

    # -- leadership -----------------------------------------------------------------------

    async def is_leader(self) -> bool:
        """Whether this replica leads (sweeps and seals): see :class:`Leadership`."""
        return await self._leadership.held()
