"""On PostgreSQL a write knows the live event before its own when no older transaction is
running (it is the oldest): its events reach this process's streams as published, with no
read back. While an older transaction runs, it claims nothing, and its events reach the
streams once read back in order."""

from __future__ import annotations

import asyncio
from typing import cast

import psycopg

from signoff.bus.readback import ReadBack
from signoff.events import Event, EventType
from signoff.stores.postgres import PostgresStore
from tests.bus.test_readback import Source, Streams
from tests.conftest import AGENT, refund_spec
from tests.stores.test_contract import make_request
from tests.stores.test_postgres import replica


async def test_the_oldest_writer_names_the_live_event_before_its_own(postgres_url: str) -> None:
    async with replica(postgres_url) as service:
        written = [
            (await service.submit(refund_spec(tool_call_id=str(n)), AGENT)).events[0]
            for n in range(5)
        ]
        stored = [0, *(e.id for e in await service.store.events_after(0))]
        # the sealer's transaction may overlap one write now and then: that one claims none
        known = [e for e in written if e.prev is not None]
        assert len(known) >= 3
        for event in known:
            assert event.prev == stored[stored.index(event.id) - 1]


async def test_a_stream_takes_its_own_events_without_reading_them_back(postgres_url: str) -> None:
    async with replica(postgres_url) as service:
        reads = 0
        source = cast(PostgresStore, service.store)
        original = source.events_and_horizon

        async def counting(after_id: int, limit: int = 1000) -> tuple[list[Event], int]:
            nonlocal reads
            reads += 1
            return await original(after_id, limit)

        source.events_and_horizon = counting  # type: ignore[method-assign]
        with service.bus.listen() as listener:
            for n in range(5):
                await service.submit(refund_spec(tool_call_id=str(n)), AGENT)
            heard = [await listener.get(timeout=5) for _ in range(5)]
            await asyncio.sleep(0.2)  # the notifications of those writes arrive meanwhile
        assert all(e is not None for e in heard)
        assert reads <= 1  # one per write before (a sealing may overlap one write)


async def test_while_an_older_transaction_runs_a_write_claims_no_predecessor(
    postgres_url: str,
) -> None:
    async with replica(postgres_url) as service:
        with psycopg.connect(postgres_url) as older, service.bus.listen() as listener:
            older.execute("SELECT pg_current_xact_id()")  # holds an xid: the horizon waits
            created = await service.submit(refund_spec(), AGENT)
            assert created.events[0].prev is None
            assert await listener.get(timeout=0.3) is None  # not before it is final
            older.rollback()
            heard = await listener.get(timeout=5)  # read back in order once it is
        assert heard is not None and heard.id == created.events[0].id


async def test_a_published_event_moves_the_place_only_when_it_follows_it() -> None:
    readback = ReadBack(Streams(), Source(), cursor=100)
    request = make_request(1)
    readback.placed(Event(300, EventType.CREATED, request.id, "now", request, prev=200))
    assert readback.cursor == 100  # something may lie between 100 and 200: read it
    readback.placed(Event(150, EventType.CREATED, request.id, "now", request, prev=90))
    assert readback.cursor == readback.delivered == 150
    readback.placed(Event(160, EventType.CREATED, request.id, "now", request, prev=None))
    assert readback.cursor == 150
