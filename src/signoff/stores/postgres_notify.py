"""Telling the other processes on one PostgreSQL database that writes committed.

A write's own transaction does not NOTIFY: PostgreSQL serializes the commits of all the
transactions that do, under one lock per database held through each commit's WAL flush (so
that notifications queue in commit order). Every write in the cluster would wait for every
other's flush: a cluster-wide lock by another name. So the notification goes out after the
write has committed, from a transaction of its own (``signoff_notify``) that does not wait
for the WAL, and that carries every write that committed meanwhile: at most one such
transaction every :data:`INTERVAL_S`, and none while no other process listens (the
listeners' sessions are named, :data:`signoff._util.LISTENER_PREFIX`, and this process's own
do not count: it woke its own waiters when it wrote; its bus names its session
:attr:`Notifier.listener`). The batch goes out as one notification, ``"<newest position>
<request id> <request id> …"`` (several when it would pass PostgreSQL's 8,000 bytes), so
that a listener is woken once per batch, not once per write.

A notification is a hint, never the truth. One that never goes out (this process died
between a write's commit and its notification; the database refused the statement; a
process began to listen just after a writer last looked) delays other processes' wake-ups
but changes nothing: a waiting call reads its request again at least every
:data:`signoff.service.RECHECK_S`; a process that begins to listen catches up once after
:data:`signoff._util.LISTEN_GRACE_S` (more than :data:`ALONE_S` + :data:`INTERVAL_S`); the
live streams read every event back below the horizon at the next notification or check
(:mod:`signoff.bus.postgres`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any

from signoff._util import LISTENER_PREFIX, listener_name
from signoff.errors import StoreError

log = logging.getLogger(__name__)

_NOTIFY = "SELECT signoff_notify(%s)"
_OTHERS = """
SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
               AND starts_with(application_name, %s) AND application_name <> %s)
"""

#: at most one notifying transaction this often: the writes meanwhile share it
INTERVAL_S = 0.005
#: how long a writer believes that no other process listens before it looks again
ALONE_S = 0.25
#: how long a writer believes that others listen (notifying when none does only costs)
OTHERS_S = 2.0
#: the longest notification sent (PostgreSQL refuses one of 8,000 bytes or more)
PAYLOAD_BYTES = 7900
_POSITION_BYTES = 20  # a position's digits at most

#: a pooled connection, as the store lends them
Lend = Callable[[], AbstractAsyncContextManager[Any]]


class Notifier:
    """Sends the notifications of committed writes in the background, in batches."""

    def __init__(self, lend: Lend) -> None:
        self._lend = lend
        self._waiting: list[tuple[int, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._sent_at = float("-inf")
        self._others = False
        self._look_at = float("-inf")  # when to look again whether others listen
        #: the name of the LISTEN session of this store's own bus (see the docstring)
        self.listener = listener_name()
        #: notifying statements sent, and writes nobody else listened for (tests read them)
        self.sent = 0
        self.unheard = 0

    def post(self, position: int, request_id: str) -> None:
        """Have the other processes told that a write on ``request_id`` committed up to
        ``position``. Returns at once: the writer does not wait for the notification."""
        if not self._others and asyncio.get_running_loop().time() < self._look_at:
            self.unheard += 1  # nobody else listens, as looked at moments ago
            return
        self._waiting.append((position, request_id))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send(), name="signoff-notify")

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            pause = self._sent_at + INTERVAL_S - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)  # the writes meanwhile join this batch
            writes, self._waiting = self._waiting, []
            self._sent_at = loop.time()
            try:
                async with self._lend() as conn:
                    if not await self._others_listen(conn, self._sent_at):
                        self.unheard += len(writes)
                        continue
                    await conn.execute(_NOTIFY, (payloads(writes),))
                self.sent += 1
            except StoreError as exc:
                # the others find these writes at their next check (see the docstring)
                log.warning(
                    "signoff: could not notify other processes of %d writes (%s)",
                    len(writes),
                    exc,
                )

    async def _others_listen(self, conn: Any, now: float) -> bool:
        if now >= self._look_at:
            cursor = await conn.execute(_OTHERS, (LISTENER_PREFIX, self.listener))
            row = await cursor.fetchone()
            self._others = bool(row and row[0])
            self._look_at = now + (OTHERS_S if self._others else ALONE_S)
        return self._others

    async def drain(self) -> None:
        """Wait until what was posted has been sent (or failed): before the pool closes."""
        task = self._task
        if task is not None:
            with suppress(asyncio.CancelledError):
                await asyncio.shield(task)


def payloads(writes: list[tuple[int, str]]) -> list[str]:
    """The notifications of ``writes`` (position, request id): each names the newest
    position among its writes, then their requests once each, in :data:`PAYLOAD_BYTES`."""
    sent: list[str] = []
    newest, ids, size = 0, dict[str, None](), _POSITION_BYTES
    for position, request_id in writes:
        grows = request_id not in ids
        if grows and ids and size + 1 + len(request_id.encode()) > PAYLOAD_BYTES:
            sent.append(" ".join([str(newest), *ids]))
            newest, ids, size = 0, {}, _POSITION_BYTES
        newest = max(newest, position)
        if grows:
            ids[request_id] = None
            size += 1 + len(request_id.encode())
    if ids:
        sent.append(" ".join([str(newest), *ids]))
    return sent
