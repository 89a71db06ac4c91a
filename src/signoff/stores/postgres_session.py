"""What belongs to one PostgreSQL session rather than the pool: the leader's lock and the
migration's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from signoff.errors import StoreError
from signoff.stores import sql

__all__ = ["LEADER_LOCK", "MIGRATION_LOCK", "Connect", "Connection", "Leadership", "migrate"]

_Q = sql.queries("postgres")

# Advisory lock keys: one 64-bit number each, per database. "signoff" in ASCII, then a byte.
#: serializes migrations, so that replicas starting together migrate once
MIGRATION_LOCK = 0x7369676E6F666602
#: held by the one replica that sweeps expired requests and seals the audit log
LEADER_LOCK = 0x7369676E6F666603

Connection = psycopg.AsyncConnection[Any]
#: makes a connection of its own (outside the pool), for what belongs to a session
Connect = Callable[[], Awaitable[Connection]]


class Leadership:
    """The replica whose dedicated session holds the session-level advisory lock
    :data:`LEADER_LOCK` leads. When the leader stops or its connection dies, the lock goes
    with the session (once its backend has exited), and the next replica to ask takes over.
    """

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: Connection | None = None
        self._leading = False
        # the sweeper and the sealer both ask; one session answers one at a time
        self._lock = asyncio.Lock()

    async def held(self) -> bool:
        """Whether this replica leads, taking the lead when it is free."""
        async with self._lock:
            try:
                if self._conn is None:
                    self._leading = False
                    self._conn = await self._connect()
                if self._leading:
                    # the session is still there, so the lock still is
                    await self._conn.execute(_Q["alive"])
                else:
                    cursor = await self._conn.execute(_Q["try_advisory_lock"], {"key": LEADER_LOCK})
                    row = await cursor.fetchone()
                    self._leading = bool(row and row[0])
            except (psycopg.Error, StoreError):
                await self.release()
            return self._leading

    async def release(self) -> None:
        """End the session (and the lead with it). Not under the lock: a store closing may
        do this while a check waits on a dead connection."""
        conn, self._conn, self._leading = self._conn, None, False
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
        rows = await (await conn.execute(_Q["applied_versions"])).fetchall()
        applied = {int(row[0]) for row in rows}
        for migration in sql.pending(known, applied):
            # no parameters: sent as one simple query, so a file may hold many statements
            await conn.execute(migration.sql)
            await conn.execute(
                _Q["record_migration"], {"version": migration.version, "name": migration.name}
            )
            applied.add(migration.version)
        version = max(applied, default=0)
    return version
