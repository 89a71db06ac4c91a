"""Sources for :func:`signoff.follow.follow` inside the server: the store's events, woken by
the bus.

:class:`StoreEvents` subscribes to the bus first, then replays everything after the id it
was opened at from the store, then goes live. The bus is only a wake-up: events go out in
id order, and an event that arrives is taken as it is only when it says that nothing lies
between it and the last one delivered (:attr:`Event.prev`); otherwise the store is read to
fill the gap. A consumer that falls too
far behind is dropped by the bus and the stream is :class:`Interrupted`, so the feed opens a
new one after the last event it delivered: nothing lost, nothing twice.

:class:`RequestEvents` follows one request for a waiting call. It holds no queue of every
event (thousands of calls may wait at once): the bus wakes it when that request changes.
"""

from __future__ import annotations

import time

from signoff.bus.base import Bus, Listener, ListenerDropped, Watch
from signoff.bus.readback import EventSource
from signoff.events import Event
from signoff.follow import Interrupted

#: events a stream may have waiting for it before it counts as too slow and is dropped
STREAM_BUFFER = 1000
REPLAY_BATCH = 500


class StoreEvents:
    """Every live event, from the store and the bus."""

    def __init__(self, source: EventSource, bus: Bus, *, buffer: int | None = None) -> None:
        self.source = source
        self.bus = bus
        self.buffer = buffer

    async def open(self, after: int | None) -> _StoreStream:
        listener = self.bus.listen(maxsize=self.buffer or STREAM_BUFFER)
        try:
            cursor = after if after is not None else await self.source.last_event_id()
        except BaseException:
            listener.close()
            raise
        return _StoreStream(self.source, listener, cursor)


class _StoreStream:
    def __init__(self, source: EventSource, listener: Listener, cursor: int) -> None:
        self._source = source
        self._listener = listener
        self._cursor = cursor
        #: read from the store, not yet handed out
        self._ready: list[Event] = []
        self._replaying = True

    async def next(self, timeout: float | None) -> Event | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ready:
                event = self._ready.pop(0)
                self._cursor = event.id
                return event
            if self._replaying:
                batch = await self._source.events_after(self._cursor, REPLAY_BATCH)
                self._ready = [e for e in batch if e.id > self._cursor]
                self._replaying = len(batch) == REPLAY_BATCH
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                arrived = await self._listener.get(timeout=left)
            except ListenerDropped as exc:
                raise Interrupted("the stream fell behind") from exc
            if arrived is None:
                return None
            if arrived.id <= self._cursor:
                continue
            if arrived.prev is not None and arrived.prev <= self._cursor:
                self._ready = [arrived]
            else:
                # something may lie between: events of other processes not heard yet
                self._replaying = True

    async def aclose(self) -> None:
        self._listener.close()


class RequestEvents:
    """One request's changes (after the moment it opens): what a waiting call follows."""

    __slots__ = ("bus", "request_id")

    def __init__(self, bus: Bus, request_id: str) -> None:
        self.bus = bus
        self.request_id = request_id

    async def open(self, after: int | None) -> _RequestStream:
        return _RequestStream(self.bus.watch(self.request_id))


class _RequestStream:
    __slots__ = ("_watch",)

    def __init__(self, watch: Watch) -> None:
        self._watch = watch

    async def next(self, timeout: float | None) -> Event | None:
        """The event that changed the request, or None on timeout or on a wake-up without
        one (the caller reads the store either way)."""
        if not await self._watch.changed(timeout):
            return None
        return self._watch.latest

    async def aclose(self) -> None:
        self._watch.close()
