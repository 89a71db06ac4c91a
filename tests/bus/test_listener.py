"""A listener that takes only some events (a stream of one agent's requests): what it passes
by wakes nobody, and what it hands on says what it follows, so its stream takes it as is
instead of reading the store for a gap that is only the events it did not want."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from signoff.bus.base import Bus
from signoff.events import Event, EventType
from signoff.models import Principal
from tests.bus.conftest import process
from tests.conftest import refund_spec
from tests.stores.test_contract import make_request


def event(position: int, prev: int | None, agent: str) -> Event:
    request = make_request(position, agent=agent)
    return Event(position, EventType.CREATED, request.id, "now", request, prev)


def mine(e: Event) -> bool:
    return e.snapshot.requested_by == "ann"


async def test_what_is_passed_by_is_skipped_and_the_next_follows_what_it_followed() -> None:
    bus = Bus()
    listener = bus.listen(accept=mine)
    for e in (
        event(10, 9, "ann"),
        event(11, 10, "bob"),
        event(12, 11, "bob"),
        event(13, 12, "ann"),  # follows 10 among what is handed on
        event(20, 15, "bob"),  # after a gap: a run of its own
        event(21, 20, "ann"),  # follows 15: a stream that saw only 13 must fill 14, 15
        event(30, None, "ann"),  # unplaced: only wakes watches, never handed on
    ):
        bus.deliver(e)
    got = []
    while (item := await listener.next_item(timeout=0.05)) is not None:
        got.append((item[0].id, item[1]))
    assert got == [(10, 9), (13, 10), (21, 15)]
    listener.close()


async def test_a_stream_of_one_agents_events_misses_none_and_rereads_nothing(url: str) -> None:
    ann = Principal(sub="ann", role=None, kind="agent")
    bob = Principal(sub="bob", role=None, kind="agent")
    async with process(url) as (service, backends):
        store = backends.store
        reads = 0
        events_after = store.events_after

        async def counted(after_id: int, limit: int = 1000) -> list[Any]:
            nonlocal reads
            reads += 1
            return await events_after(after_id, limit)

        store.events_after = counted  # type: ignore[method-assign]
        ids: list[str] = []
        seen: list[str] = []
        started = time.monotonic()
        async with service.follow(accept=lambda e: e.snapshot.requested_by == "ann") as feed:
            for i in range(10):
                for who in (bob, bob, ann):  # two of another agent's for each of ann's
                    made = await service.submit(refund_spec(tool_call_id=f"{who.sub}{i}"), who)
                    if who is ann:
                        ids.append(made.request.id)
                await asyncio.sleep(0.02)  # the bus has each one in hand (read back)
            async with asyncio.timeout(10):
                async for e in feed:
                    seen.append(e.request_id)
                    if len(seen) == 10:
                        break
        elapsed = time.monotonic() - started
    assert seen == ids
    # the opening read, and SQLite's tail of other processes every 0.2 s (so many as the
    # test took, however slow the machine): not one read per event
    assert reads <= 2 + elapsed / 0.2, f"the store was read {reads} times in {elapsed:.1f} s"
