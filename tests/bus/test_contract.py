"""One contract for every bus (memory, SQLite's polling, PostgreSQL's LISTEN/NOTIFY), the way
the store suite holds every store: what a waiting call and a live stream rely on."""

from __future__ import annotations

import asyncio

import pytest

from signoff.bus.base import Listener, ListenerDropped
from signoff.connect import connect
from tests.bus.conftest import process
from tests.conftest import AGENT, refund_spec


async def test_a_published_event_reaches_each_local_subscriber_once(url: str) -> None:
    async with process(url) as (service, backends):
        with backends.bus.listen() as listener:
            submitted = (await service.submit(refund_spec(), AGENT)).request
            first = await listener.get(timeout=5)
            assert first is not None and first.request_id == submitted.id
            for event in await backends.store.events_after(0):
                backends.bus.deliver(event)  # a second copy (a NOTIFY, a tail) is dropped
            assert await listener.get(timeout=0.3) is None


async def test_a_watch_wakes_for_its_request_only(url: str) -> None:
    async with process(url) as (service, backends):
        mine = (await service.submit(refund_spec(tool_call_id="a"), AGENT)).request
        with backends.bus.watch(mine.id) as watch:
            await service.submit(refund_spec(tool_call_id="b"), AGENT)
            assert not await watch.changed(0.3)
            await service.cancel(mine.id, AGENT, "no longer needed")
            assert await watch.changed(5)
            assert watch.latest is not None and watch.latest.request_id == mine.id


async def test_a_listener_that_falls_behind_is_dropped_not_waited_for(url: str) -> None:
    async with process(url) as (service, backends):
        with backends.bus.listen(maxsize=2) as listener:
            for i in range(5):
                await service.submit(refund_spec(tool_call_id=str(i)), AGENT)
            with pytest.raises(ListenerDropped):
                await drain(listener)


async def drain(listener: Listener) -> None:
    while await listener.get(timeout=5) is not None:
        pass


async def test_another_process_is_heard_where_the_store_is_shared(url: str) -> None:
    if url == "memory://":
        return  # a memory store is one process's own: there is nobody else to hear
    async with process(url) as (writer, _), process(url) as (_, reader):
        with reader.bus.listen() as listener:
            submitted = (await writer.submit(refund_spec(), AGENT)).request
            heard = await listener.get(timeout=10)
            assert heard is not None and heard.request_id == submitted.id
            assert heard.snapshot.status.value == "pending"


async def test_start_and_aclose_are_idempotent(url: str) -> None:
    backends = connect(url)
    await backends.store.start()
    await backends.bus.start(backends.store)
    await backends.bus.start(backends.store)
    await backends.bus.aclose()
    await backends.bus.aclose()
    await backends.store.aclose()


async def test_nothing_is_heard_after_aclose(url: str) -> None:
    async with process(url) as (service, backends):
        listener = backends.bus.listen()
        listener.close()
        await service.submit(refund_spec(), AGENT)
        await asyncio.sleep(0.3)
        assert await listener.get(timeout=0.1) is None
