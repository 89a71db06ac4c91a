"""The ordered read-back (signoff.bus.readback) against a source that behaves as
PostgreSQL's does: positions far apart, a horizon that runs ahead of the last event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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
