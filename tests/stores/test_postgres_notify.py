"""On PostgreSQL a write does not NOTIFY inside its own transaction: a transaction that
notifies holds one lock per database from its commit through the commit's WAL flush (so that
notifications queue in commit order), which would line every write of the cluster up behind
every other's flush. The other processes are told after the commit instead
(signoff.stores.postgres_notify), and still hear every write
(tests/stores/test_postgres.py: a decision on one replica wakes a waiter on another)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
import pytest
from psycopg import sql as pgsql

from signoff._util import LISTEN_GRACE_S, listener_name
from signoff.bus.postgres import PostgresBus
from signoff.connect import connect
from signoff.service import ApprovalService
from signoff.stores import postgres_notify
from signoff.stores.postgres import PostgresStore
from tests.conftest import AGENT, PUBLISHER, refund_spec
from tests.stores.test_contract import created_entry, make_request

#: each commit of the database's sessions waits this long before its WAL flush
#: (commit_delay, in microseconds): the window in which the lock would be seen
COMMIT_DELAY_US = 100_000

# the database-wide locks held by the sessions whose running statement contains a marker
_LOCKS = """
SELECT l.mode FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass AND a.query LIKE %s
"""


@asynccontextmanager
async def another_listener(url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A LISTEN session of another process, named as signoff's buses name theirs."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as ear:
        await ear.execute("SELECT set_config('application_name', %s, false)", (listener_name(),))
        await ear.execute("LISTEN signoff_events")
        yield ear


def slow_commits(url: str) -> None:
    """Every session opened on the database from now on waits before each WAL flush."""
    with psycopg.connect(url, autocommit=True) as conn:
        name = pgsql.Identifier(conn.info.dbname)
        delay = pgsql.Literal(COMMIT_DELAY_US)
        conn.execute(pgsql.SQL("ALTER DATABASE {} SET commit_delay = {}").format(name, delay))
        conn.execute(pgsql.SQL("ALTER DATABASE {} SET commit_siblings = 0").format(name))
        conn.execute("CREATE TABLE probe (x integer)")


async def locks_while(
    url: str, marker: str, statement: Awaitable[object]
) -> tuple[list[str], float]:
    """The database-wide locks seen held by a statement containing ``marker`` while
    ``statement`` runs, and how long it took."""
    seen: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as probe:

        async def poll() -> None:
            while True:
                cursor = await probe.execute(_LOCKS, (f"%{marker}%",))
                seen.extend(mode for (mode,) in await cursor.fetchall())
                await asyncio.sleep(0.002)

        polling = asyncio.create_task(poll())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        try:
            await statement
        finally:
            took = time.perf_counter() - started
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
    return seen, took


async def test_a_write_holds_no_database_wide_lock_through_its_commit(postgres_url: str) -> None:
    slow_commits(postgres_url)
    # the probe sees the lock a transaction that notifies holds through its commit
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        notifying = conn.execute(
            "WITH w AS (INSERT INTO probe VALUES (1) RETURNING x) "
            "SELECT pg_notify('signoff_probe', 'x') FROM w"
        )
        held, took = await locks_while(postgres_url, "signoff_probe", notifying)
    assert took >= COMMIT_DELAY_US / 1e6 * 0.9  # its commit waited
    assert "AccessExclusiveLock" in held
    # a write's commit waits just as long, holding no such lock
    store = PostgresStore.from_url(postgres_url, min_size=1)
    await store.start()
    try:
        async with another_listener(postgres_url):
            request = make_request(1)
            writing = store.create(request, created_entry(request))
            held, took = await locks_while(postgres_url, "signoff_create", writing)
            assert took >= COMMIT_DELAY_US / 1e6 * 0.9
            assert held == []
            await store._notifier.drain()
            assert store._notifier.sent >= 1  # and the other process was told after it
    finally:
        await store.aclose()


async def test_the_writes_that_commit_meanwhile_share_one_notification(postgres_url: str) -> None:
    store = PostgresStore.from_url(postgres_url, min_size=2)
    await store.start()
    try:
        async with another_listener(postgres_url) as ear:
            requests = [make_request(n) for n in range(20)]
            results = await asyncio.gather(*(store.create(r, created_entry(r)) for r in requests))
            await store._notifier.drain()
            sent = store._notifier.sent
            notes = [n.payload async for n in ear.notifies(timeout=10, stop_after=sent)]
        # each notification: the newest position of its writes, then their requests
        told = {rid: int(note.split()[0]) for note in notes for rid in note.split()[1:]}
        assert told.keys() == {c.request.id for c in results}
        assert all(told[c.request.id] >= c.events[-1].id for c in results)
        assert len(notes) == sent < len(requests)
    finally:
        await store.aclose()


def test_a_batch_too_big_for_one_notification_is_split_and_names_every_request() -> None:
    writes = [(n, f"apr_{n % 500:040d}") for n in range(1, 1001)]  # each request twice
    notes = [note.split() for note in postgres_notify.payloads(writes)]
    assert len(notes) > 1
    assert all(len(" ".join(note)) <= postgres_notify.PAYLOAD_BYTES for note in notes)
    assert all(len(set(ids)) == len(ids) for _, *ids in notes)  # once per notification
    # every request is named with a position at or past its newest write
    told: dict[str, int] = {}
    for newest, *ids in notes:
        told.update((rid, max(told.get(rid, 0), int(newest))) for rid in ids)
    newest_write: dict[str, int] = {}
    for position, rid in writes:
        newest_write[rid] = max(newest_write.get(rid, 0), position)
    assert told.keys() == newest_write.keys()
    assert all(told[rid] >= position for rid, position in newest_write.items())


async def test_one_notification_wakes_the_waiters_on_each_of_its_requests(
    postgres_url: str,
) -> None:
    backends = connect(postgres_url)
    async with ApprovalService(backends.store, backends.bus, sweep=False) as service:
        requests = [
            (await service.submit(refund_spec(tool_call_id=f"w{n}"), AGENT)).request
            for n in range(3)
        ]
        bus = cast(PostgresBus, service.bus)
        watches = [bus.watch(r.id) for r in requests]
        try:
            # another process's batch: a position this process never wrote
            bus._heard(f"{2**40} {' '.join(r.id for r in requests)}")
            woken = [await watch.changed(timeout=0) for watch in watches]
        finally:
            for watch in watches:
                watch.close()
        assert woken == [True, True, True]


async def test_a_writer_notifies_only_while_another_process_listens(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_notify, "ALONE_S", 0.0)  # look again at every batch
    backends = connect(postgres_url)
    async with ApprovalService(backends.store, backends.bus, sweep=False) as service:
        notifier = cast(PostgresStore, service.store)._notifier
        await service.submit(refund_spec(tool_call_id="alone"), AGENT)
        await notifier.drain()
        # only this process's own bus listens: it heard the write when it was published
        assert (notifier.sent, notifier.unheard) == (0, 1)
        async with another_listener(postgres_url) as ear:
            created = await service.submit(refund_spec(tool_call_id="heard"), AGENT)
            await notifier.drain()
            heard = [n.payload async for n in ear.notifies(timeout=5, stop_after=1)]
        assert heard == [f"{created.events[-1].id} {created.request.id}"]
        assert (notifier.sent, notifier.unheard) == (1, 1)


async def test_a_process_that_begins_to_listen_catches_up_what_it_was_not_told(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that last looked before another process began to listen does not notify
    it; that process wakes its waiters LISTEN_GRACE_S after it began, not after RECHECK_S."""
    monkeypatch.setattr(postgres_notify, "ALONE_S", 60.0)  # the writer never looks again
    first = connect(postgres_url)
    async with ApprovalService(first.store, first.bus, sweep=False) as deciding:
        notifier = cast(PostgresStore, deciding.store)._notifier
        request = (await deciding.submit(refund_spec(), AGENT)).request
        await notifier.drain()  # it looked: nobody else listens
        second = connect(postgres_url)
        async with ApprovalService(second.store, second.bus, sweep=False) as waiting:
            wait = asyncio.create_task(waiting.wait(request.id, AGENT, timeout=60))
            await asyncio.sleep(0.05)
            await deciding.decide(request.id, PUBLISHER, "approve")
            await notifier.drain()
            assert notifier.sent == 0  # it was not told
            done = await asyncio.wait_for(wait, LISTEN_GRACE_S + 5)
            assert done.status.value == "approved"  # long before RECHECK_S (30 s)


def test_a_new_listener_catches_up_after_every_writer_looked_again() -> None:
    assert postgres_notify.ALONE_S + postgres_notify.INTERVAL_S < LISTEN_GRACE_S
