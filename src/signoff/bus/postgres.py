"""The bus for PostgreSQL: other replicas' events arrive by LISTEN/NOTIFY.

Every stored event NOTIFYs ``signoff_events`` with its id, from the transaction that wrote
it (a trigger, see ``sql/postgres``). PostgreSQL delivers a notification when that
transaction commits, in commit order, and the store's write lock makes commit order the
order of event ids. So one listener per process hears ids that only ever increase, and:

- an id it has already delivered (this process published it) just moves its cursor on;
- any other id makes it read every event after its cursor from the store and deliver them;
  the store is the truth, the notification only says "look".

This process's own events are delivered at once by :meth:`PostgresBus.publish`, as on the
memory bus, and :meth:`Bus.deliver` drops the second copy. Notifications are not durable:
when the LISTEN connection drops, the listener reconnects, LISTENs again, and then catches
up from the store, so nothing is lost, only delayed. LISTEN needs a session of its own (a
pooler in transaction mode cannot carry it), so the listener has a dedicated connection,
never one from the store's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from signoff._util import stop_task
from signoff.bus.base import Bus, EventSource
from signoff.errors import MissingDependency, StoreError

try:
    import psycopg
except ImportError as exc:
    raise MissingDependency("psycopg", "postgres") from exc

log = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[Any]
#: makes a new autocommit connection of its own (the store's ``connect``)
Connect = Callable[[], Awaitable[Connection]]

# the channel the events table's trigger notifies (see the store's migrations)
_LISTEN = "LISTEN signoff_events"
_ALIVE = "SELECT 1"

#: events read from the store at a time when catching up
CATCH_UP_BATCH = 1000
#: how often a quiet LISTEN connection is checked: a peer that vanished behind a firewall
#: can leave the socket silent for hours before TCP notices
CHECK_INTERVAL_S = 30.0


class PostgresBus(Bus):
    """``connect`` makes the dedicated LISTEN connection (the store's, so both reach the
    same database); the events are read from the source given to :meth:`start`."""

    def __init__(
        self,
        connect: Connect,
        *,
        reconnect_delay: float = 0.2,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        super().__init__()
        self._connect = connect
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        #: every event with an id up to this one has been delivered or needs no delivery
        self._cursor = 0

    async def start(self, source: EventSource) -> None:
        if self._task is not None:
            return
        conn = await self._listen()
        try:
            # after LISTEN: whatever commits from here on is heard, the rest is history
            self._cursor = await source.last_event_id()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._task = asyncio.create_task(self._run(source), name="signoff-bus-listen")

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None
        # a task cancelled before its first step never reached its own clean-up
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()

    # -- the listener ---------------------------------------------------------------------

    async def _listen(self) -> Connection:
        try:
            conn = await self._connect()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            await conn.execute(_LISTEN)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _run(self, source: EventSource) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            try:
                await self._hear(source, conn)
            except (psycopg.Error, StoreError) as exc:
                log.warning("signoff: lost the LISTEN connection (%s); reconnecting", exc)
            finally:
                await conn.close()
            self._conn = None
            self._conn = await self._reconnect(source)

    async def _hear(self, source: EventSource, conn: Connection) -> None:
        while True:
            # notifications that arrive between two of these loops wait in the connection
            quiet = conn.notifies(timeout=CHECK_INTERVAL_S)
            async with contextlib.aclosing(quiet) as notifications:
                async for notification in notifications:
                    await self._heard(source, int(notification.payload))
            await conn.execute(_ALIVE)  # raises when the connection is gone

    async def _heard(self, source: EventSource, event_id: int) -> None:
        if event_id <= self._cursor:
            return
        if event_id in self._seen or not (self._watches or self._listeners):
            # published here already, or nobody here to tell: every earlier id was notified
            # before this one (commit order is id order), so nothing is skipped
            self._cursor = event_id
            return
        await self._catch_up(source)

    async def _catch_up(self, source: EventSource) -> None:
        while True:
            events = await source.events_after(self._cursor, CATCH_UP_BATCH)
            for event in events:
                self._cursor = event.id
                self.deliver(event)
            if len(events) < CATCH_UP_BATCH:
                return

    async def _reconnect(self, source: EventSource) -> Connection:
        """LISTEN again, then read what was missed; retry with growing pauses until both
        work."""
        delay = self.reconnect_delay
        while True:
            await asyncio.sleep(delay)
            try:
                conn = await self._listen()
            except (psycopg.Error, StoreError) as exc:
                log.warning("signoff: cannot LISTEN yet (%s); retrying", exc)
            else:
                try:
                    await self._catch_up(source)
                except (psycopg.Error, StoreError) as exc:
                    await conn.close()
                    log.warning("signoff: cannot catch up yet (%s); retrying", exc)
                except BaseException:
                    await conn.close()
                    raise
                else:
                    return conn
            delay = min(delay * 2, self.max_reconnect_delay)
