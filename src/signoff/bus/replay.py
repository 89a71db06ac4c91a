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
from collections.abc import Callable

from signoff.bus.base import Bus, Listener, ListenerDropped, Watch
from signoff.bus.readback import EventSource
from signoff.events import Event
from signoff.follow import Interrupted

#: events a stream may have waiting for it before it counts as too slow and is dropped
STREAM_BUFFER = 1000
REPLAY_BATCH = 500


class StoreEvents:
    """Every live event, or those ``accept`` takes, from the store and the bus."""

    def __init__(
        self,
        source: EventSource,
        bus: Bus,
        *,
        buffer: int | None = None,
        accept: Callable[[Event], bool] | None = None,
    ) -> None:
        self.source = source
        self.bus = bus
        self.buffer = buffer
        self.accept = accept

    async def open(self, after: int | None) -> _StoreStream:
        listener = self.bus.listen(maxsize=self.buffer or STREAM_BUFFER, accept=self.accept)
        try:
            cursor = after if after is not None else await self.source.last_event_id()
        except BaseException:
            listener.close()
            raise
        return _StoreStream(self.source, listener, cursor, self.accept)


class _StoreStream:
    def __init__(
        self,
        source: EventSource,
        listener: Listener,
        cursor: int,
        accept: Callable[[Event], bool] | None = None,
    ) -> None:
        self._source = source
        self._listener = listener
        #: every event up to here was handed out, or not wanted
        self._cursor = cursor
        self._accept = accept
        #: read from the store, not yet handed out; and the newest event that read saw
        self._ready: list[Event] = []
        self._read_to = cursor
        self._replaying = True

    async def next(self, timeout: float | None) -> Event | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._ready:
                event = self._ready.pop(0)
                # past what the store read passed by, once its last wanted event is out
                self._cursor = event.id if self._ready else max(event.id, self._read_to)
                return event
            if self._replaying:
                batch = await self._source.events_after(self._cursor, REPLAY_BATCH)
                fresh = [e for e in batch if e.id > self._cursor]
                self._replaying = len(batch) == REPLAY_BATCH
                if fresh:
                    self._read_to = fresh[-1].id
                    accept = self._accept
                    self._ready = fresh if accept is None else [e for e in fresh if accept(e)]
                    if not self._ready:
                        self._cursor = self._read_to
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = await self._listener.next_item(timeout=left)
            except ListenerDropped as exc:
                raise Interrupted("the stream fell behind") from exc
            if item is None:
                return None
            arrived, prev = item
            if arrived.id <= self._cursor:
                continue
            if prev is not None and prev <= self._cursor:
                # it follows what was handed out (or passed by, not wanted): take it as is
                self._read_to = arrived.id
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
