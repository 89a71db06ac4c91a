"""The polling bus (a SQLite file shared by processes) does not read a process's own events
back: it steps over the positions the process wrote, and still hears everyone else's, and
its own events that no caller published."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from signoff.bus.polling import PollingBus
from signoff.events import Event
from signoff.service import ApprovalService
from signoff.stores.own_writes import MAX_RUNS, OwnWrites
from signoff.stores.sqlite import SqliteStore
from tests.conftest import AGENT, refund_spec
from tests.stores.test_contract import created_entry, make_request


def test_runs_merge_where_they_touch_in_any_order() -> None:
    own = OwnWrites()
    own.add([3, 4])
    own.add([8])
    own.add([1, 2])  # before the first run, touching it
    own.add([6, 7])  # touches the run after it only
    assert own.through(0) == 4
    own.add([5])  # closes the gap: one run from 1 to 8
    assert own.through(0) == 8
    assert own.through(8) == 8
    own.add([10])
    assert own.through(8) == 8  # 9 is not ours: someone else's event may be there
    assert own.through(9) == 10


def test_a_position_asked_past_is_forgotten() -> None:
    own = OwnWrites()
    own.add([1, 2])
    own.add([5, 6])
    assert own.through(3) == 3
    assert own.through(4) == 6
    own.add([])
    assert own.through(6) == 6


def test_only_so_many_runs_are_kept() -> None:
    own = OwnWrites()
    for n in range(MAX_RUNS + 10):
        own.add([2 * n + 1])  # never touching: one run each
    # the oldest were forgotten: the tail reads them back (harmless) rather than skip them
    assert own.through(0) == 0
    assert own.through(2 * (MAX_RUNS + 9)) == 2 * (MAX_RUNS + 9) + 1


async def _heard(listener_events: list[Event], request_id: str) -> None:
    async with asyncio.timeout(10):
        while not any(e.request_id == request_id for e in listener_events):
            await asyncio.sleep(0.01)


async def test_the_tail_reads_other_processes_events_and_not_its_own(tmp_path: Path) -> None:
    url = tmp_path / "shared.db"
    mine, theirs = SqliteStore(url), SqliteStore(url)
    bus = PollingBus(interval=0.02)
    read_back: list[int] = []
    events_after = mine.events_after

    async def counting(after_id: int, limit: int = 1000) -> list[Event]:
        events = await events_after(after_id, limit)
        read_back.extend(e.id for e in events)
        return events

    mine.events_after = counting  # type: ignore[method-assign]
    async with ApprovalService(mine, bus, sweep=False) as here, theirs:
        with bus.listen() as listener:
            heard: list[Event] = []

            async def collect() -> None:
                while True:
                    event = await listener.get()
                    if event is not None:
                        heard.append(event)

            collector = asyncio.create_task(collect())
            own_ids = [
                (await here.submit(refund_spec(tool_call_id=f"{n}"), AGENT)).request
                for n in range(3)
            ]
            other = make_request(90, agent="other-process")
            written = await theirs.create(other, created_entry(other))
            await _heard(heard, other.id)
            await asyncio.sleep(0.1)  # a few more tails
            collector.cancel()
    own_positions = {e.id for e in heard if e.request_id in {r.id for r in own_ids}}
    assert len(own_positions) == 3
    assert not own_positions & set(read_back)  # never read back
    assert written.events[0].id in read_back  # the other process's event was


async def test_an_event_nobody_published_is_still_found_by_the_tail(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    bus = PollingBus(interval=0.02)
    await store.start()
    await bus.start(store)
    try:
        with bus.listen() as listener:
            request = make_request(1)
            writing = asyncio.create_task(store.create(request, created_entry(request)))
            while store._commits is None or not store._commits._queue:
                await asyncio.sleep(0)  # until the write is queued for the next commit
            writing.cancel()  # its caller goes away; the commit goes on without it
            with pytest.raises(asyncio.CancelledError):
                await writing
            assert await store.get(request.id) is not None
            event = await listener.get(timeout=5)
            assert event is not None and event.request_id == request.id
    finally:
        await bus.aclose()
        await store.aclose()
