"""PostgreSQL with several replicas on one database: wake-ups by LISTEN/NOTIFY, event order,
reconnection, sweep leadership, and how the store is chosen and opened.

The store contract, the service rules, the audit chain and the races run on PostgreSQL too,
through the ``store`` fixture; this file holds what only a shared server has."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from signoff.bus.postgres import PostgresBus
from signoff.connect import connect
from signoff.errors import MissingDependency, StoreError
from signoff.models import Status
from signoff.server.sse import stream
from signoff.service import RECHECK_S, ApprovalService
from signoff.stores.postgres import PostgresStore
from tests.conftest import ADMIN, AGENT, refund_spec
from tests.helpers.sse import frames


@asynccontextmanager
async def replica(url: str, reconnect_delay: float = 0.2) -> AsyncIterator[ApprovalService]:
    """One server replica: a service with its own pool and its own bus."""
    store = PostgresStore.from_url(url, min_size=1)
    bus = PostgresBus(store.connect, reconnect_delay=reconnect_delay)
    service = ApprovalService(store, bus, sweep=False)
    await service.start()
    try:
        yield service
    finally:
        await service.aclose()


def terminate(url: str, where: str) -> int:
    """End the sessions on ``url``'s database that match ``where`` (on pg_stat_activity),
    waiting until they are gone."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
        ).fetchall()
    return len(rows)


LISTENERS = "query LIKE '%LISTEN signoff_events%'"
#: only the sweep lock is held between transactions: the write lock lives inside each one
SWEEP_LOCK_HOLDER = "pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"


async def test_a_decision_on_one_replica_wakes_a_waiter_on_another(postgres_url: str) -> None:
    async with replica(postgres_url) as a, replica(postgres_url) as b:
        assert isinstance(a.bus, PostgresBus)
        request = (await a.submit(refund_spec(), AGENT)).request
        waiter = asyncio.create_task(a.wait(request.id, AGENT, timeout=30))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        decided = time.perf_counter()
        await b.decide(request.id, ADMIN, "approve")
        # the bus never polls and a wait re-reads only every RECHECK_S (30 s): only the
        # notification can end this wait so soon (5 s: room for a slow machine)
        woken = await asyncio.wait_for(waiter, 5.0)
        assert woken.status is Status.APPROVED
        assert time.perf_counter() - decided < 5.0 < RECHECK_S


async def test_a_listener_hears_another_replicas_events_in_id_order(postgres_url: str) -> None:
    async with replica(postgres_url) as a, replica(postgres_url) as b:
        with a.bus.listen() as listener:
            for n in range(5):
                request = (await b.submit(refund_spec(), AGENT)).request
                if n % 2:
                    await b.decide(request.id, ADMIN, "reject", reason="no")
            heard = [await listener.get(timeout=2) for _ in range(7)]
        stored = await a.store.events_after(0)
        assert [e.id for e in heard if e] == [e.id for e in stored]
        assert [e.type for e in heard if e] == [e.type for e in stored]


async def test_the_event_stream_stays_in_order_while_both_replicas_write(
    postgres_url: str,
) -> None:
    """The SSE replay relies on ids becoming visible in order across replicas."""
    async with replica(postgres_url) as a, replica(postgres_url) as b:
        events = cast(AsyncGenerator[bytes, None], stream(a, ADMIN, 0))
        first = asyncio.ensure_future(anext(events))  # subscribed before anything is written

        async def write(service: ApprovalService) -> None:
            for _ in range(15):
                await service.submit(refund_spec(), AGENT)

        await asyncio.gather(write(a), write(b), write(a), write(b))
        # the events waiting go out together, in as few writes as fit
        ids = [int(e["id"]) for e in frames(await first)]
        while len(ids) < 60:
            ids += [int(e["id"]) for e in frames(await asyncio.wait_for(anext(events), 5))]
        await events.aclose()
        assert ids == [e.id for e in await a.store.events_after(0, limit=100)]
        assert ids == sorted(ids)


async def test_the_listener_reconnects_and_catches_up(postgres_url: str) -> None:
    async with (
        replica(postgres_url, reconnect_delay=1.0) as a,
        replica(postgres_url) as b,
    ):
        request = (await a.submit(refund_spec(), AGENT)).request
        waiter = asyncio.create_task(a.wait(request.id, AGENT, timeout=30))
        await asyncio.sleep(0.2)
        assert terminate(postgres_url, LISTENERS) == 2  # both replicas' LISTEN sessions
        # decided while A is not listening: its notification is lost, the event is not
        await b.decide(request.id, ADMIN, "approve")
        woken = await asyncio.wait_for(waiter, 5.0)
        assert woken.status is Status.APPROVED
        # and A hears later events again (a stream may also get events that committed just
        # before it opened: at least once, in order)
        with a.bus.listen() as listener:
            later = (await b.submit(refund_spec(), AGENT)).request
            heard = [await listener.get(timeout=5)]
            while heard[-1] is not None and heard[-1].request_id != later.id:
                heard.append(await listener.get(timeout=5))
        assert heard[-1] is not None and heard[-1].request_id == later.id
        ids = [e.id for e in heard if e is not None]
        assert ids == sorted(ids)


async def _takes_the_lead(store: PostgresStore, within: float = 5.0) -> bool:
    """The lock goes when the old leader's backend has exited: shortly after its session
    closed. The next replica to ask takes over then."""
    deadline = asyncio.get_running_loop().time() + within
    while not await store.is_leader():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_one_replica_at_a_time_leads_the_sweep_and_the_sealing(postgres_url: str) -> None:
    a = PostgresStore.from_url(postgres_url, min_size=1)
    b = PostgresStore.from_url(postgres_url, min_size=1)
    await a.start()
    await b.start()
    try:
        assert await a.is_leader()
        assert not await b.is_leader()
        assert await a.is_leader()  # it stays the leader
        await a.aclose()  # its session ends, and the lock with it
        assert await _takes_the_lead(b)
        await a.start()  # a replica restarting does not take the lead back
        assert not await a.is_leader()
        # a leader whose session dies loses the lead; another replica takes it
        assert terminate(postgres_url, SWEEP_LOCK_HOLDER) == 1
        assert await _takes_the_lead(a)
        assert not await b.is_leader()
        assert not await b.is_leader()
    finally:
        await a.aclose()
        await b.aclose()


async def test_replicas_with_sweepers_expire_overdue_requests(postgres_url: str) -> None:
    sweeping = [ApprovalService(PostgresStore.from_url(postgres_url, min_size=1)) for _ in range(2)]
    for service in sweeping:
        await service.start()
    try:
        request = (await sweeping[1].submit(refund_spec(policy={"timeout_s": 0.5}), AGENT)).request
        deadline = time.monotonic() + 5
        while (current := await sweeping[1].store.get(request.id)) is not None:
            if current.status is Status.EXPIRED or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert current is not None and current.status is Status.EXPIRED
        types = [e.type for e in await sweeping[0].store.audit_events()]
        assert types == ["request.created", "request.expired"]
    finally:
        for service in sweeping:
            await service.aclose()


async def test_a_pool_made_by_the_caller(postgres_url: str) -> None:
    """Dependency injection: the caller's pool, not in autocommit mode, stays the caller's."""
    pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]] = AsyncConnectionPool(
        postgres_url, open=False, min_size=1
    )
    await pool.open()
    try:
        async with ApprovalService(PostgresStore(pool), sweep=False) as service:
            request = (await service.submit(refund_spec(), AGENT)).request
            await service.decide(request.id, ADMIN, "approve")
            assert (await service.wait(request.id, AGENT, timeout=1)).status is Status.APPROVED
            assert (await service.verify_audit(ADMIN)).events == 2
        assert not pool.closed
    finally:
        await pool.close()


async def test_a_store_opens_again_after_closing(postgres_url: str) -> None:
    store = PostgresStore.from_url(postgres_url, min_size=1)
    for _ in range(2):
        await store.start()
        await store.start()
        assert await store.events_after(0) == []
        await store.aclose()
        await store.aclose()


async def test_an_unreachable_server_fails_at_once() -> None:
    store = PostgresStore.from_url("postgresql://postgres@127.0.0.1:1/nothing")
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect"):
        await store.start()
    assert time.monotonic() - started < 5
    await store.aclose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_connect_routes_both_schemes(scheme: str) -> None:
    backends = connect(f"{scheme}://postgres@127.0.0.1:5432/test")
    assert isinstance(backends.store, PostgresStore)
    assert isinstance(backends.bus, PostgresBus)


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an absent package looks like
    monkeypatch.delitem(sys.modules, "signoff.stores.postgres")
    with pytest.raises(MissingDependency) as caught:
        connect("postgresql://127.0.0.1/test")
    assert caught.value.detail == {"package": "psycopg", "extra": "postgres"}
    assert "pip install 'signoff[postgres]'" in str(caught.value)


def test_importing_signoff_imports_no_driver() -> None:
    code = (
        "import sys, signoff, signoff.stores, signoff.service, signoff.bus\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
