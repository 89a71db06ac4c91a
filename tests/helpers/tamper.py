"""An attacker with write access to the database, for the tamper tests: statements run on
the store's database directly, with the append-only triggers dropped first (a database's
owner can), and a second store opened on the same database (another process, with a cache
of its own)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg

from signoff.audit import Checkpoint, Link
from signoff.models import ApprovalRequest
from signoff.stores.base import Store
from signoff.stores.memory import MemoryStore
from signoff.stores.postgres import PostgresStore
from signoff.stores.sqlite import SqliteStore

_TABLES = ("audit_events", "audit_chain", "audit_checkpoints")


def sql(store: Store, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """``statement`` (``?`` placeholders) on the store's database, triggers dropped."""
    if isinstance(store, PostgresStore):
        assert isinstance(store.pool.conninfo, str)
        with psycopg.connect(store.pool.conninfo, autocommit=True) as conn:
            for table in _TABLES:
                for action in ("update", "delete", "truncate"):
                    conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action} ON {table}")
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    assert isinstance(store, SqliteStore)
    lite = sqlite3.connect(store.path, isolation_level=None)
    try:
        for table in _TABLES:
            for action in ("update", "delete"):
                lite.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        return lite.execute(statement, params).fetchall()
    finally:
        lite.close()


async def tamper(store: Store, request: ApprovalRequest) -> None:
    """Write ``request`` over its row, as someone with the database would: the version
    stays, only the state changes."""
    if isinstance(store, MemoryStore):
        store.tamper_request(request)
        return
    sql(
        store,
        "UPDATE requests SET status = ?, body = ? WHERE id = ?",
        (request.status.value, request.model_dump_json(), request.id),
    )


async def reopen(store: Store) -> Store:
    """Another store on the same database (another process); the memory store is itself."""
    if isinstance(store, MemoryStore):
        return store
    if isinstance(store, SqliteStore):
        other: Store = SqliteStore(store.path)
    else:
        assert isinstance(store, PostgresStore) and isinstance(store.pool.conninfo, str)
        other = PostgresStore.from_url(store.pool.conninfo, min_size=1)
    await other.start()
    return other


# -- the log, whichever store holds it ----------------------------------------------------


def log_rows(store: Store) -> list[tuple[int, str, str | None]]:
    """``(position, record, state)`` of every audit event, in position order."""
    if isinstance(store, MemoryStore):
        return [(e.position, e.record, e.state) for e in store.raw_events]
    rows = sql(store, "SELECT position, record, state FROM audit_events ORDER BY position")
    return [(int(p), str(r), s) for p, r, s in rows]


def links(store: Store) -> list[Link]:
    if isinstance(store, MemoryStore):
        return list(store.raw_chain)
    rows = sql(store, "SELECT seq, position, hash FROM audit_chain ORDER BY seq")
    return [Link(int(q), int(p), str(h)) for q, p, h in rows]


def set_event(
    store: Store, position: int, *, record: str | None = None, state: str | None = ""
) -> None:
    """Overwrite an event's record and/or its copied-out state ("" leaves the state)."""
    if isinstance(store, MemoryStore):
        for event in store.raw_events:
            if event.position == position:
                event.record = record if record is not None else event.record
                event.state = event.state if state == "" else state
        return
    if record is not None:
        sql(store, "UPDATE audit_events SET record = ? WHERE position = ?", (record, position))
    if state != "":
        sql(store, "UPDATE audit_events SET state = ? WHERE position = ?", (state, position))


def delete_event(store: Store, position: int) -> None:
    if isinstance(store, MemoryStore):
        store.raw_events[:] = [e for e in store.raw_events if e.position != position]
    else:
        sql(store, "DELETE FROM audit_events WHERE position = ?", (position,))


def insert_event(store: Store, position: int, record: str, request_id: str | None) -> None:
    if isinstance(store, MemoryStore):
        from signoff.stores.memory import MemoryEvent

        store.raw_events.append(
            MemoryEvent(position, request_id, "access.refused", None, None, "2026-01-01", record)
        )
        store.raw_events.sort(key=lambda e: e.position)
        return
    sql(
        store,
        "INSERT INTO audit_events (position, request_id, type, state, live, at, record) "
        "VALUES (?, ?, 'access.refused', NULL, NULL, '2026-01-01', ?)",
        (position, request_id, record),
    )


def replace_links(store: Store, new: list[Link]) -> None:
    """Put ``new`` in place of the chain's links (same seqs)."""
    if isinstance(store, MemoryStore):
        by_seq = {link.seq: link for link in new}
        store.raw_chain[:] = [by_seq.get(link.seq, link) for link in store.raw_chain]
        return
    for link in new:
        sql(
            store,
            "UPDATE audit_chain SET position = ?, hash = ? WHERE seq = ?",
            (link.position, link.hash, link.seq),
        )


def delete_links_from(store: Store, seq: int) -> None:
    if isinstance(store, MemoryStore):
        store.raw_chain[:] = [link for link in store.raw_chain if link.seq < seq]
    else:
        sql(store, "DELETE FROM audit_chain WHERE seq >= ?", (seq,))


def delete_checkpoints_from(store: Store, size: int) -> None:
    if isinstance(store, MemoryStore):
        store.raw_checkpoints[:] = [c for c in store.raw_checkpoints if c.size < size]
    else:
        sql(store, "DELETE FROM audit_checkpoints WHERE size >= ?", (size,))


def add_checkpoint(store: Store, checkpoint: Checkpoint) -> None:
    if isinstance(store, MemoryStore):
        store.raw_checkpoints.append(checkpoint)
    else:
        sql(
            store,
            "INSERT INTO audit_checkpoints (size, head, position, at, kid, signature) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            tuple(checkpoint.to_dict().values()),
        )
