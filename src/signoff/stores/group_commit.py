"""Group commit for SQLite: concurrent writers share one transaction.

SQLite has one writer at a time, and each transaction pays for its commit (``BEGIN``,
``COMMIT``, the pages it dirtied written to the WAL) whatever it wrote. So writes are not
run where they are asked for: each is queued as a unit of work, and at the end of the event
loop's turn the queue is flushed in one ``BEGIN IMMEDIATE`` … ``COMMIT``, each unit in a
savepoint of its own (one that fails is rolled back alone and fails alone). Every caller is
answered only after the ``COMMIT`` that made its write durable returned. One agent alone
pays one loop turn for this; many agents (or many HTTP requests in one server) share their
commits.

The flush runs on the event loop's thread, like every other write here: a write takes tens
of microseconds, less than handing it to a thread and back, and a thread would only fight
the loop for the GIL around each statement. The write lock (``lock``, which the WAL
checkpointer takes too) keeps the connection to one thread at a time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from signoff.errors import StoreError

T = TypeVar("T")


@dataclass(slots=True)
class Tx:
    """What a unit of work gets: the connection, inside the flush's transaction."""

    conn: sqlite3.Connection


Work = Callable[[Tx], T]


class _Unit(Generic[T]):
    __slots__ = ("future", "outcome", "work")

    def __init__(self, work: Work[T], future: asyncio.Future[T]) -> None:
        self.work = work
        self.future = future
        self.outcome: tuple[bool, Any] | None = None


class GroupCommit:
    """Queues units of work and commits them together. See the module docstring."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: threading.RLock,
    ) -> None:
        self.conn = conn
        self.lock = lock
        self._queue: list[_Unit[Any]] = []
        #: flushes and units so far (the benchmarks read them)
        self.flushes = 0
        self.units = 0

    def submit(self, work: Work[T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Unit(work, future))
        if len(self._queue) == 1:
            loop.call_soon(self._flush)
        return future

    async def drain(self) -> None:
        """Wait until every write queued so far is committed (or failed): units commit in
        the order they were queued, so an empty unit queued last is answered last."""
        await self.submit(lambda tx: None)

    def close(self) -> None:
        """Nothing to release: kept for the store's symmetry (drain first)."""

    # -- flushing -------------------------------------------------------------------------

    def _flush(self) -> None:
        units, self._queue = self._queue, []
        if units:
            self._commit(units)
            _settle(units)

    def _commit(self, units: list[_Unit[Any]]) -> None:
        """Run ``units`` in one transaction; each one's outcome is set, never raised."""
        self.flushes += 1
        self.units += len(units)
        with self.lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                _fail(units, StoreError(f"sqlite: {exc}"))
                return
            try:
                tx = Tx(conn)
                if len(units) == 1:
                    # the whole transaction is this unit's: if it fails, all of it goes
                    units[0].outcome = (True, units[0].work(tx))
                else:
                    for unit in units:
                        _in_savepoint(unit, tx)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                _fail(units, _as_error(exc))
                if not isinstance(exc, Exception):
                    raise


def _in_savepoint(unit: _Unit[Any], tx: Tx) -> None:
    """One unit of several: one that fails is rolled back (and fails) alone."""
    tx.conn.execute("SAVEPOINT unit")
    try:
        unit.outcome = (True, unit.work(tx))
    except Exception as exc:
        tx.conn.execute("ROLLBACK TO unit")  # and the positions it took are free again
        unit.outcome = (False, _as_error(exc))
    tx.conn.execute("RELEASE unit")


def _as_error(exc: BaseException) -> BaseException:
    """A database error is a StoreError; what a unit raised itself (a refusal) is kept."""
    return StoreError(f"sqlite: {exc}") if isinstance(exc, sqlite3.Error) else exc


def _fail(units: list[_Unit[Any]], error: BaseException) -> None:
    for unit in units:
        unit.outcome = (False, error)


def _settle(units: list[_Unit[Any]]) -> None:
    """Answer every caller, after the commit (on the loop that asked)."""
    for unit in units:
        future, outcome = unit.future, unit.outcome
        if future.done() or outcome is None:
            continue
        ok, value = outcome
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
