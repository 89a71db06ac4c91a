"""The ordered read-back (signoff.bus.readback) against a source that behaves as
PostgreSQL's does: positions far apart, a horizon that runs ahead of the last event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from signoff.bus.base import Bus
from signoff.bus.readback import ReadBack
from signoff.events import Event, EventType
from tests.stores.test_contract import make_request


class Source:
    """Events at the given positions; the horizon is ``horizon`` (every position under it is
    final), as ``events_and_horizon`` reports it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.horizon = 1

    def add(self, position: int) -> None:
        # as PostgreSQL's: a new event lies above every horizon reported before it
        assert position >= self.horizon
        request = make_request(position)
        self.events.append(Event(position, EventType.CREATED, request.id, "now", request))
        self.horizon = position + 1000  # other transactions came and went since

    async def events_and_horizon(self, after_id: int, limit: int = 1000) -> tuple[list[Event], int]:
        found = [e for e in self.events if after_id < e.id < self.horizon][:limit]
        prev = after_id
        out = []
        for event in found:
            out.append(
                Event(event.id, event.type, event.request_id, event.at, event.snapshot, prev)
            )
            prev = event.id
        return out, self.horizon

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        return (await self.events_and_horizon(after_id, limit))[0]

    async def last_event_id(self) -> int:
        return self.horizon - 1


async def until(done: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not done():
            await asyncio.sleep(0.001)


class Streams:
    def __init__(self) -> None:
        self.got: list[Event] = []
        self.has_listeners = True

    def deliver(self, event: Event) -> None:
        self.got.append(event)


async def test_an_event_read_after_a_kept_place_follows_the_last_event_handed_out() -> None:
    """After a read finds nothing more below the horizon, the place moves up to it; the next
    event read from there follows the last event handed out (nothing lay between: it was
    read), so a stream takes it as is rather than reading the store for a gap."""
    source, streams = Source(), Streams()
    back = ReadBack(streams, source, cursor=0)
    for position in (256, 2048, 4096):
        source.add(position)
        back.want(position)
        await until(lambda: back.cursor >= source.horizon - 1)
    assert [e.id for e in streams.got] == [256, 2048, 4096]
    assert [e.prev for e in streams.got] == [0, 256, 2048]
    assert back.cursor == source.horizon - 1  # the place kept, past the last event
    await back.aclose()


async def test_after_passing_events_by_unread_the_next_one_claims_no_more() -> None:
    """With no stream open the read-back only keeps its place; the events it passed by
    unread are not claimed absent: the next event follows the place, not an older event."""
    source, streams = Source(), Streams()
    back = ReadBack(streams, source, cursor=0)
    source.add(256)
    back.want(256)
    await until(lambda: back.cursor >= 256)
    streams.has_listeners = False
    source.add(2048)  # nobody listens: passed by
    back.want(2048)
    await until(lambda: back.cursor >= 2048)
    streams.has_listeners = True
    kept = back.cursor
    source.add(8192)
    back.want(8192)
    await until(lambda: back.cursor >= 8192)
    assert [e.id for e in streams.got] == [256, 8192]
    assert streams.got[-1].prev == kept and kept >= 2048
    await back.aclose()


class CountingSource(Source):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def events_and_horizon(self, after_id: int, limit: int = 1000) -> tuple[list[Event], int]:
        self.reads += 1
        return await super().events_and_horizon(after_id, limit)


def own_event(source: Source, position: int, prev: int) -> Event:
    """This process's event at ``position``, committed, published naming ``prev``."""
    source.add(position)
    stored = next(e for e in source.events if e.id == position)
    return Event(position, stored.type, stored.request_id, stored.at, stored.snapshot, prev)


async def test_an_own_event_ahead_of_the_streams_reaches_them_in_order_from_one_read() -> None:
    """A write names its predecessor, but that event (another process's) has not been read
    back here yet: the streams get both in order from the bus's read, rather than this one
    first and each stream reading the store for the gap."""
    source = CountingSource()
    bus = Bus()
    await bus.start(source)
    with bus.listen() as listener:
        source.add(5000)  # another process's, notified later or never
        await bus.publish([own_event(source, 6000, prev=5000)])
        got = [await listener.next_item(timeout=5.0) for _ in range(2)]
    assert [(item[0].id, item[1]) for item in got if item] == [(5000, 0), (6000, 5000)]
    assert source.reads == 1
    await bus.aclose()


async def test_an_own_event_that_follows_the_streams_goes_to_them_without_a_read() -> None:
    source = CountingSource()
    bus = Bus()
    await bus.start(source)
    place = await source.last_event_id()
    with bus.listen() as listener:
        await bus.publish([own_event(source, place + 10, prev=place)])
        item = await listener.next_item(timeout=0)
    assert item is not None and item[0].id == place + 10
    assert source.reads == 0
    await bus.aclose()


async def test_events_delivered_in_order_by_a_tail_move_the_place_kept() -> None:
    """A polling tail hands other processes' events to the streams in order: the next own
    event that follows them goes to the streams as it is."""
    source = CountingSource()
    bus = Bus()
    await bus.start(source)
    place = await source.last_event_id()
    with bus.listen() as listener:
        source.add(place + 1)
        tailed = source.events[-1]
        bus.deliver(
            Event(tailed.id, tailed.type, tailed.request_id, tailed.at, tailed.snapshot, place)
        )
        mine = make_request(place + 2)  # committed, not read back: the tail passed it
        await bus.publish([Event(place + 2, EventType.CREATED, mine.id, "now", mine, place + 1)])
        first, second = await listener.next_item(timeout=0), await listener.next_item(timeout=0)
    assert first is not None and second is not None
    assert (first[0].id, second[0].id) == (place + 1, place + 2)
    assert source.reads == 0
    await bus.aclose()
