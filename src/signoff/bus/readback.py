"""Reading the store's events back in order, for the streams of one process.

A writer on PostgreSQL cannot say which event comes just before its own (others commit in
parallel), so its events wake the waiters at once but reach the live streams only once read
back from the store in position order, below the horizon: every position under it has
committed or never will. :class:`ReadBack` does that read, for every bus: it is asked to
read up to a position (one this process wrote, one a notification named), and reads until
it has passed it, pausing briefly while an older transaction still holds the horizon back.
With no stream open it reads no events, and only keeps its place.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from signoff._util import stop_task
from signoff.errors import StoreError
from signoff.events import Event

log = logging.getLogger(__name__)

#: events read from the store at a time
BATCH = 1000
#: first and longest pause before reading again while the horizon lags a wanted position
PAUSES = (0.001, 0.05)


class EventSource(Protocol):
    """Where the stored live events are read from (a store, without the bus knowing which):
    a bus that hears other processes reads their events here."""

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]: ...

    async def last_event_id(self) -> int: ...


class Streams(Protocol):
    """What the read-back hands events to (the bus)."""

    @property
    def has_listeners(self) -> bool: ...

    def deliver(self, event: Event) -> None: ...


class HorizonSource(Protocol):
    async def events_and_horizon(
        self, after_id: int, limit: int = 1000
    ) -> tuple[list[Event], int]: ...


class ReadBack:
    """See the module docstring. ``cursor``: every live event up to it has been handed to the
    streams, or had no stream here to go to."""

    def __init__(self, bus: Streams, source: EventSource, cursor: int) -> None:
        self.bus = bus
        self.source = source
        self.cursor = cursor
        #: the newest event handed out, or where the place was last kept: every live event
        #: between it and ``cursor`` is known not to exist (read below the horizon: none)
        self.delivered = cursor
        self._target = cursor
        self._task: asyncio.Task[None] | None = None
        #: streams opened so far (a read that keeps the place must not skip a new one's)
        self.opened = 0

    def want(self, position: int) -> None:
        """Read (in the background) until ``position`` has been passed."""
        if position <= self.cursor:
            return  # passed already (this process's own event, placed when published)
        self._target = max(self._target, position)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read(), name="signoff-bus-read")

    def follows(self, event: Event) -> bool:
        """Whether ``event`` (its predecessor known) follows what reached the streams, so
        that they may take it as it is; or was read back already."""
        prev = event.prev
        return prev is not None and (prev <= self.cursor or event.id <= self.cursor)

    def placed(self, event: Event) -> None:
        """``event`` reached the streams in order: if it follows the place kept, the place
        moves past it, and a notification of it asks for no read."""
        if event.prev is not None and event.prev <= self.cursor < event.id:
            self.cursor = self.delivered = event.id

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _read(self) -> None:
        pause = PAUSES[0]
        while self.cursor < self._target:
            try:
                if await self._catch_up():
                    return
            except (OSError, StoreError) as exc:
                log.warning("signoff: reading live events back failed (%s); retrying", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, PAUSES[1])

    async def _catch_up(self) -> bool:
        """Hand out every event below the horizon; False while the horizon lags the target."""
        if not self.bus.has_listeners:
            # only keep the place, so that a stream opening later gets every event that
            # commits after it opened (and no backlog); unless one opened during the read
            opened = self.opened
            horizon = await self.source.last_event_id()
            if opened == self.opened:
                self.cursor = max(self.cursor, horizon)
                self.delivered = self.cursor  # events were passed by unread: no claim
            return self.cursor >= self._target
        while True:
            events, horizon = await self._events(self.cursor)
            for event in events:
                if event.prev == self.cursor:
                    # read right after the place kept: what lay between the last event
                    # handed out and here was read, and was nothing. Saying so lets a
                    # stream take this event as is instead of reading the store for a gap
                    event.prev = self.delivered
                self.cursor = self.delivered = event.id
                self.bus.deliver(event)
            if len(events) < BATCH:
                # everything below the horizon has been read
                self.cursor = max(self.cursor, horizon)
                return self.cursor >= self._target

    async def _events(self, after: int) -> tuple[list[Event], int]:
        """Events after ``after``, and a position up to which all of them are final."""
        if hasattr(self.source, "events_and_horizon"):
            source: HorizonSource = self.source  # type: ignore[assignment]
            events, horizon = await source.events_and_horizon(after, BATCH)
            return events, horizon - 1
        final = await self.source.last_event_id()  # read first: what follows is no older
        return await self.source.events_after(after, BATCH), final
