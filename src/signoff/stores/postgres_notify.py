"""Telling the other processes on one PostgreSQL database that writes committed.

A write's own transaction does not NOTIFY: PostgreSQL serializes the commits of all the
transactions that do, under one lock per database held through each commit's WAL flush (so
that notifications queue in commit order). Every write in the cluster would wait for every
other's flush: a cluster-wide lock by another name. So the notification goes out after the
write has committed, from a transaction of its own (``signoff_notify``) that does not wait
for the WAL, and that carries every write that committed meanwhile.

A notification is a hint, never the truth. One that never goes out (this process died
between a write's commit and its notification; the database refused the statement) delays
other processes' wake-ups but changes nothing: a waiting call reads its request again at
least every :data:`signoff.service.RECHECK_S`, and the live streams read every event back
below the horizon at the next notification or check (:mod:`signoff.bus.postgres`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any

from signoff.errors import StoreError

log = logging.getLogger(__name__)

_NOTIFY = "SELECT signoff_notify(%s)"

#: a pooled connection, as the store lends them
Lend = Callable[[], AbstractAsyncContextManager[Any]]


class Notifier:
    """Sends the notifications of committed writes in the background, in batches."""

    def __init__(self, lend: Lend) -> None:
        self._lend = lend
        self._waiting: list[str] = []
        self._task: asyncio.Task[None] | None = None
        #: statements sent so far (the tests read it)
        self.sent = 0

    def post(self, position: int, request_id: str) -> None:
        """Have the other processes told that a write on ``request_id`` committed up to
        ``position``. Returns at once: the writer does not wait for the notification."""
        self._waiting.append(f"{position} {request_id}")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send(), name="signoff-notify")

    async def _send(self) -> None:
        while self._waiting:
            payloads, self._waiting = self._waiting, []
            try:
                async with self._lend() as conn:
                    await conn.execute(_NOTIFY, (payloads,))
                self.sent += 1
            except StoreError as exc:
                # the others find these writes at their next check (see the docstring)
                log.warning(
                    "signoff: could not notify other processes of %d writes (%s)",
                    len(payloads),
                    exc,
                )

    async def drain(self) -> None:
        """Wait until what was posted has been sent (or failed): before the pool closes."""
        task = self._task
        if task is not None:
            with suppress(asyncio.CancelledError):
                await asyncio.shield(task)
