"""The bus wakes whoever waits on a request and feeds live event streams.

Delivery inside a process is the same for every backend: :class:`Bus` keeps the local
watches (one per waiting call) and listeners (one per live stream) and fans each event out
to them. A backend only decides how events published by *other* processes arrive here.

The bus is a wake-up signal, never the source of truth: a waiter re-reads the store after
each wake-up, and a stream that falls behind is dropped and replays from the store. So a
lost or duplicated message can delay a wake-up but never change a decision.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self

from signoff.events import Event

_DEDUPE_WINDOW = 8192


class Watch:
    """Wakes one waiter when an event for its request arrives. Subscribe, then read the
    store, then wait: an event that lands between the read and the wait is not lost."""

    __slots__ = ("_bus", "_fired", "_future", "latest", "request_id")

    def __init__(self, bus: Bus, request_id: str) -> None:
        self._bus = bus
        self.request_id = request_id
        self._fired = False
        self._future: asyncio.Future[None] | None = None
        #: the last event that fired the watch (None after a wake-up without one)
        self.latest: Event | None = None

    def _fire(self, event: Event | None = None) -> None:
        self._fired = True
        self.latest = event
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    async def changed(self, timeout: float | None) -> bool:
        """Wait until an event arrives since the last call; False on timeout."""
        if not self._fired:
            loop = asyncio.get_running_loop()
            future = self._future = loop.create_future()
            # one timer on the same future: cheaper than asyncio.wait_for, which matters
            # when thousands of calls wait at once
            timer = None if timeout is None else loop.call_later(timeout, _expire, future)
            try:
                await future
            finally:
                self._future = None
                if timer is not None:
                    timer.cancel()
            if not self._fired:
                return False
        self._fired = False
        return True

    def close(self) -> None:
        self._bus._unwatch(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ListenerDropped(Exception):
    """The listener fell too far behind and was dropped; replay from the store."""


class Listener:
    """A bounded queue of every event. A slow consumer is dropped, not waited for."""

    __slots__ = ("_bus", "_queue")

    def __init__(self, bus: Bus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)

    def _put(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._bus._unlisten(self)
            # make room for the wake-up so the consumer learns it was dropped
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout``. Raises ListenerDropped when dropped."""
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:
            raise ListenerDropped("the live stream fell behind and was dropped")
        return event

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.get()
            if event is not None:
                yield event

    def close(self) -> None:
        self._bus._unlisten(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventSource(Protocol):
    """Where the stored live events are read from (a store, without the bus knowing which):
    a bus that hears other processes reads their events here."""

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]: ...

    async def last_event_id(self) -> int: ...


class Bus:
    """Local fan-out plus a way to hear other processes. See the module docstring."""

    def __init__(self) -> None:
        self._watches: dict[str, set[Watch]] = {}
        self._listeners: set[Listener] = set()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()

    async def start(self, source: EventSource) -> None:
        """Begin hearing other processes' events, read from ``source``."""

    async def aclose(self) -> None:
        """Stop hearing other processes. Safe to call twice."""

    async def publish(self, events: Sequence[Event]) -> None:
        """Tell this process's subscribers, after the events' commit. Other processes hear
        of them through the store (a tail, a NOTIFY): a backend overrides only if it must
        send them itself."""
        for event in events:
            self.deliver(event)

    def watch(self, request_id: str) -> Watch:
        watch = Watch(self, request_id)
        self._watches.setdefault(request_id, set()).add(watch)
        return watch

    def listen(self, *, maxsize: int = 1000) -> Listener:
        listener = Listener(self, maxsize)
        self._listeners.add(listener)
        return listener

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def is_watched(self, request_id: str) -> bool:
        return request_id in self._watches

    def wake_all(self) -> None:
        """Wake every watcher, e.g. after a reconnection, so each re-reads the store."""
        for watches in list(self._watches.values()):
            for watch in watches:
                watch._fire()

    def deliver(self, event: Event) -> None:
        """Fan ``event`` out to local watches and listeners, once per event id."""
        if event.id in self._seen:
            return
        self._seen.add(event.id)
        self._seen_order.append(event.id)
        if len(self._seen_order) > _DEDUPE_WINDOW:
            self._seen.discard(self._seen_order.popleft())
        for watch in self._watches.get(event.request_id, ()):
            watch._fire(event)
        for listener in list(self._listeners):
            listener._put(event)

    def _unwatch(self, watch: Watch) -> None:
        watches = self._watches.get(watch.request_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.request_id]

    def _unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)
