"""The bus for PostgreSQL: other replicas' events arrive by LISTEN/NOTIFY.

Every write is followed, once it has committed, by a NOTIFY on ``signoff_events`` that
names its request and a position at or past its newest event, one per batch of a writer's
writes (:mod:`signoff.stores.postgres_notify`). Writers commit in parallel, so positions
arrive in any order, and a notification only says "look":

- it wakes this process's watches on that request at once (a waiting call re-reads the
  request, which has committed);
- when live streams listen here, the bus reads the events themselves from the store, in
  position order and only below the horizon (every position under it has committed or never
  will), and hands them to the streams with the position just before each (``Event.prev``).
  A notified position not yet below the horizon (an older transaction is still running) is
  read again shortly, until it is.

This process's own events wake its watches at once (:meth:`Bus.publish`), and reach its
streams through the same ordered read (:mod:`signoff.bus.readback`). Notifications are not
durable: when the LISTEN connection drops, the listener reconnects, LISTENs again, wakes
every watch and catches the streams up from the store, so nothing is lost, only delayed. A
notification that never came (its writer died after the commit, or had not yet seen this
process listen) is made up for by a catch-up :data:`signoff._util.LISTEN_GRACE_S` after
each LISTEN, the streams' read-back at every check of the connection
(:data:`CHECK_INTERVAL_S`) and the waiting calls' own re-reads
(:data:`signoff.service.RECHECK_S`). The LISTEN session is named
(``name``) so that writers see that another process listens.
LISTEN needs a session of its own (a pooler in transaction mode cannot carry it), so the
listener has a dedicated connection, never one from the store's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from signoff._util import LISTEN_GRACE_S, listener_name, stop_task
from signoff.bus.base import Bus
from signoff.bus.readback import EventSource
from signoff.errors import MissingDependency, StoreError

try:
    import psycopg
except ImportError as exc:
    raise MissingDependency("psycopg", "postgres") from exc

log = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[Any]
#: makes a new autocommit connection of its own (the store's ``connect``)
Connect = Callable[[], Awaitable[Connection]]

# the channel the store's writes notify (see its migrations)
_LISTEN = "LISTEN signoff_events"
_ALIVE = "SELECT 1"
# named, so that writers know another process listens (signoff.stores.postgres_notify)
_NAME = "SELECT set_config('application_name', %s, false)"

#: how often a quiet LISTEN connection is checked (a peer that vanished behind a firewall
#: can leave the socket silent for hours before TCP notices), and the streams caught up
CHECK_INTERVAL_S = 30.0


class PostgresBus(Bus):
    """``connect`` makes the dedicated LISTEN connection (the store's, so both reach the
    same database); the events are read from the source given to :meth:`start`. ``name``
    names the LISTEN session: the store whose writes this bus publishes passes its own
    (``PostgresStore.listener``), so that it need not notify when only this bus listens;
    by default a name of its own, which every writer notifies."""

    def __init__(
        self,
        connect: Connect,
        *,
        name: str | None = None,
        reconnect_delay: float = 0.2,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        super().__init__()
        self._connect = connect
        self.name = name or listener_name()
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._source: EventSource | None = None

    async def start(self, source: EventSource) -> None:
        if self._task is not None:
            return
        self._source = source
        conn = await self._listen()
        try:
            # after LISTEN: whatever commits from here on is heard, the rest is history
            await super().start(source)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._task = asyncio.create_task(self._run(), name="signoff-bus-listen")

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None
        # a task cancelled before its first step never reached its own clean-up
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()
        await super().aclose()

    # -- the listener ---------------------------------------------------------------------

    async def _listen(self) -> Connection:
        try:
            conn = await self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            await conn.execute(_NAME, (self.name,))
            await conn.execute(_LISTEN)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _run(self) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            late = asyncio.create_task(self._catch_up_late(), name="signoff-bus-late")
            try:
                await self._hear(conn)
            except (psycopg.Error, StoreError) as exc:
                log.warning("signoff: lost the LISTEN connection (%s); reconnecting", exc)
            finally:
                await stop_task(late)
                await conn.close()
            self._conn = None
            self._conn = await self._reconnect()

    async def _hear(self, conn: Connection) -> None:
        while True:
            # notifications that arrive between two of these loops wait in the connection
            quiet = conn.notifies(timeout=CHECK_INTERVAL_S)
            async with contextlib.aclosing(quiet) as notifications:
                async for notification in notifications:
                    self._heard(notification.payload)
            await conn.execute(_ALIVE)  # raises when the connection is gone
            if self.has_listeners and self._source is not None:
                # events whose notification never came (see the module docstring); the
                # store failing says nothing about this connection
                with contextlib.suppress(StoreError):
                    self.read_back(await self._source.last_event_id())

    def _heard(self, payload: str) -> None:
        # "<newest position> <request id> …": one writer's batch (stores.postgres_notify)
        position, *request_ids = payload.split(" ")
        if not position.isdigit():
            return
        newest = int(position)
        # this process's own writes woke their watches already, when they were published
        if newest not in self._woken and newest not in self._seen:
            for request_id in request_ids:
                self.wake(request_id)
        self.read_back(newest)

    async def _catch_up_late(self) -> None:
        """Writers that had not yet seen this process listen did not notify it: once each
        has looked again, wake every waiter and catch the streams up, once."""
        await asyncio.sleep(LISTEN_GRACE_S)
        self.wake_all()
        assert self._source is not None
        with contextlib.suppress(psycopg.Error, StoreError):
            self.read_back(await self._source.last_event_id())

    async def _reconnect(self) -> Connection:
        """LISTEN again, wake every watch and catch the streams up; retry with growing
        pauses until LISTEN works."""
        delay = self.reconnect_delay
        while True:
            await asyncio.sleep(delay)
            try:
                conn = await self._listen()
            except (psycopg.Error, StoreError) as exc:
                log.warning("signoff: cannot LISTEN yet (%s); retrying", exc)
                delay = min(delay * 2, self.max_reconnect_delay)
                continue
            # whatever changed while nobody listened: every waiter looks again
            self.wake_all()
            assert self._source is not None
            with contextlib.suppress(psycopg.Error, StoreError):
                self.read_back(await self._source.last_event_id())
            return conn
