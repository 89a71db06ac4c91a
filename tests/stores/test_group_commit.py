"""SQLite's group commit: concurrent writers share one transaction; each is answered only
after the commit that made its write durable; one that fails fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.errors import StoreError
from signoff.service import ApprovalService
from signoff.stores.group_commit import GroupCommit, Tx
from signoff.stores.sqlite import SqliteStore
from tests.conftest import AGENT, refund_spec


def _database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    return conn


async def test_concurrent_writes_share_commits_and_each_is_durable_when_answered(
    tmp_path: Path,
) -> None:
    conn = _database(tmp_path / "g.db")
    commits = GroupCommit(conn, threading.RLock())
    reader = sqlite3.connect(tmp_path / "g.db", isolation_level=None)

    async def write(n: int) -> None:
        await commits.submit(lambda tx: tx.conn.execute("INSERT INTO t VALUES (?)", (n,)))
        # answered: committed, so another connection sees it
        assert reader.execute("SELECT 1 FROM t WHERE x = ?", (n,)).fetchone() == (1,)

    await asyncio.gather(*(write(n) for n in range(300)))
    assert commits.units == 300
    assert commits.flushes < 50  # shared: not one commit per write
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (300,)
    commits.close()


async def test_a_failing_write_fails_alone(tmp_path: Path) -> None:
    conn = _database(tmp_path / "g.db")
    commits = GroupCommit(conn, threading.RLock())

    def insert(n: int) -> Callable[[Tx], None]:
        def work(tx: Tx) -> None:
            tx.conn.execute("INSERT INTO t VALUES (?)", (n,))

        return work

    def insert_then_fail(tx: Tx) -> None:
        tx.conn.execute("INSERT INTO t VALUES (1000)")
        raise ValueError("a refusal the unit computed after writing")

    results = await asyncio.gather(
        commits.submit(insert(1)),
        commits.submit(insert_then_fail),
        commits.submit(insert(1)),  # a duplicate key: a database error, its own alone
        commits.submit(insert(2)),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], StoreError)
    assert results[0] is None and results[3] is None
    rows = conn.execute("SELECT x FROM t ORDER BY x").fetchall()
    assert rows == [(1,), (2,)]  # the failed units' writes were rolled back with them
    commits.close()


async def test_agents_in_one_process_share_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    async with ApprovalService(store, sweep=False) as service:
        await asyncio.gather(
            *(service.submit(refund_spec(tool_call_id=f"c{n}"), AGENT) for n in range(64))
        )
        assert store._commits is not None
        assert store._commits.flushes < 64
    again = SqliteStore(tmp_path / "s.db")
    async with again:
        assert (await again.count_by_status()) == {"pending": 64}


async def test_the_store_refuses_writes_once_closed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.start()
    await store.aclose()
    with pytest.raises(StoreError, match="not open"):
        await store.spend("k", datetime.now(UTC))


async def test_a_write_alone_that_fails_after_writing_leaves_nothing(tmp_path: Path) -> None:
    conn = _database(tmp_path / "g.db")
    commits = GroupCommit(conn, threading.RLock())

    def insert_then_fail(tx: Tx) -> None:
        tx.conn.execute("INSERT INTO t VALUES (7)")
        raise ValueError("refused after writing")

    with pytest.raises(ValueError, match="after writing"):
        await commits.submit(insert_then_fail)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    commits.close()
