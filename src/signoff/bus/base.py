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
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

from signoff.bus.readback import EventSource, ReadBack
from signoff.events import Event

_DEDUPE_WINDOW = 8192
#: requests whose newest event is remembered (see Bus.latest)
_LATEST = 1024


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


#: what a listener hands on: an event, and the event it follows among those handed on
Item = tuple[Event, int | None]


class Listener:
    """A bounded queue of every event, or of those ``accept`` takes. A slow consumer is
    dropped, not waited for.

    Events ``accept`` refuses are passed by without waking the consumer (a stream of one
    agent's requests is not woken for every other agent's). Each event handed on carries
    the event it follows among those handed on: its own ``prev``, or, where it follows a
    run of events passed by one after another, what the first of them followed. So the
    consumer can tell a run passed by on purpose from a gap it must fill from the store."""

    __slots__ = ("_accept", "_bus", "_passed", "_queue")

    def __init__(
        self, bus: Bus, maxsize: int, accept: Callable[[Event], bool] | None = None
    ) -> None:
        self._bus = bus
        self._accept = accept
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize)
        #: the run of events passed by since the last one handed on: (what its first
        #: followed, its last), while each followed the one before
        self._passed: tuple[int | None, int] | None = None

    def _put(self, event: Event) -> None:
        prev, passed = event.prev, self._passed
        if self._accept is not None and not self._accept(event):
            if passed is not None and prev is not None and prev == passed[1]:
                self._passed = (passed[0], event.id)  # the run goes on
            else:
                self._passed = (prev, event.id)  # a run begins
            return
        if passed is not None and prev is not None and prev == passed[1]:
            prev = passed[0]  # it follows what the run passed by followed
        self._passed = None
        try:
            self._queue.put_nowait((event, prev))
        except asyncio.QueueFull:
            self._bus._unlisten(self)
            # make room for the wake-up so the consumer learns it was dropped
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout``. Raises ListenerDropped when dropped."""
        item = await self.next_item(timeout)
        return None if item is None else item[0]

    async def next_item(self, timeout: float | None = None) -> Item | None:
        """:meth:`get`, with the event the next one follows among those handed on."""
        queue = self._queue
        if not queue.empty():
            item = queue.get_nowait()  # no timer to set up for what is already here
        elif timeout is None:
            item = await queue.get()  # nor for a wait without end
        elif timeout <= 0:
            return None  # only what is already here was asked for
        else:
            try:
                # not wait_for: on 3.11 it can swallow a cancellation that lands as the
                # item does
                async with asyncio.timeout(timeout):
                    item = await queue.get()
            except TimeoutError:
                return None
        if item is None:
            raise ListenerDropped("the live stream fell behind and was dropped")
        return item

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


class _Window:
    """The ids seen lately (a bounded set): each event is delivered once."""

    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, event_id: int) -> bool:
        return event_id in self._ids

    def add(self, event_id: int) -> None:
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > _DEDUPE_WINDOW:
            self._ids.discard(self._order.popleft())


class Bus:
    """Local fan-out plus a way to hear other processes. See the module docstring."""

    def __init__(self) -> None:
        self._watches: dict[str, set[Watch]] = {}
        self._listeners: set[Listener] = set()
        #: events delivered to everyone; events that only woke the watches (see deliver)
        self._seen = _Window()
        self._woken = _Window()
        #: the newest event delivered per request, lately (forgotten on a bare wake-up)
        self._latest: OrderedDict[str, Event] = OrderedDict()
        self._readback: ReadBack | None = None

    async def start(self, source: EventSource) -> None:
        """Begin hearing other processes' events, read from ``source``. A backend that
        overrides this calls it first."""
        if self._readback is None:
            self._readback = ReadBack(self, source, await source.last_event_id())

    async def aclose(self) -> None:
        """Stop hearing other processes. Safe to call twice. A backend that overrides this
        calls it last."""
        if self._readback is not None:
            await self._readback.aclose()
            self._readback = None

    async def publish(self, events: Sequence[Event]) -> None:
        """Tell this process's subscribers, after the events' commit. Other processes hear
        of them through the store (a tail, a NOTIFY): a backend overrides only if it must
        send them itself. Events whose writer could not say what came before them reach
        the streams once read back in order (:mod:`signoff.bus.readback`)."""
        unplaced = 0
        readback = self._readback
        for event in events:
            if event.prev is None:
                self.deliver(event)  # wakes the watches only
                unplaced = max(unplaced, event.id)
            elif readback is None or not self._listeners or readback.follows(event):
                self.deliver(event)  # it follows in order, or no stream is open to care
            else:
                # events before it have not reached the streams: one read here brings
                # them all in order, where each stream would read the store for the gap
                self.deliver(event, streams=False)
                unplaced = max(unplaced, event.id)
        if unplaced:
            self.read_back(unplaced)

    def read_back(self, position: int) -> None:
        """Have the streams get every event up to ``position``, read from the store."""
        if self._readback is not None:
            self._readback.want(position)

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def watch(self, request_id: str) -> Watch:
        watch = Watch(self, request_id)
        self._watches.setdefault(request_id, set()).add(watch)
        return watch

    def listen(
        self, *, maxsize: int = 1000, accept: Callable[[Event], bool] | None = None
    ) -> Listener:
        """Every event from now on, or those ``accept`` takes (see :class:`Listener`)."""
        if self._readback is not None:
            self._readback.opened += 1
        listener = Listener(self, maxsize, accept)
        self._listeners.add(listener)
        return listener

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def is_watched(self, request_id: str) -> bool:
        return request_id in self._watches

    def latest(self, request_id: str) -> Event | None:
        """The newest event about ``request_id`` this process heard lately, when nothing
        has changed it since that this process could not see (a wake-up without an event).
        A waiter that subscribed and finds one need not read the store to begin: the state
        it left was committed, and whatever follows wakes the waiter."""
        return self._latest.get(request_id)

    def forget_latest(self) -> None:
        """Events were passed by unread: what this process heard may be out of date."""
        self._latest.clear()

    def _remember(self, event: Event) -> None:
        latest = self._latest
        known = latest.get(event.request_id)
        if known is not None and known.id >= event.id:
            return  # an older event heard late (read back in order)
        latest[event.request_id] = event
        latest.move_to_end(event.request_id)
        if len(latest) > _LATEST:
            latest.popitem(last=False)

    def wake_all(self) -> None:
        """Wake every watcher, e.g. after a reconnection, so each re-reads the store."""
        self.forget_latest()
        for watches in list(self._watches.values()):
            for watch in watches:
                watch._fire()

    def deliver(self, event: Event, *, streams: bool = True) -> None:
        """Fan ``event`` out to local watches and listeners, once per event id.

        An event whose writer could not know what came just before it (``prev`` None: other
        writers commit in parallel), or that the streams are not ready for (``streams``
        False), only wakes the watches, which re-read the store anyway; streams get it when
        the bus reads it back in order."""
        if event.id in self._seen:
            return
        self._remember(event)
        if event.id not in self._woken:
            for watch in self._watches.get(event.request_id, ()):
                watch._fire(event)
        if event.prev is None or not streams:
            self._woken.add(event.id)
            return
        self._seen.add(event.id)
        if self._readback is not None:
            self._readback.placed(event)
        for listener in list(self._listeners):
            listener._put(event)

    def wake(self, request_id: str) -> None:
        """Wake the watches on ``request_id``: it changed, in a way read from the store."""
        self._latest.pop(request_id, None)  # what it is now is only in the store
        for watch in self._watches.get(request_id, ()):
            watch._fire()

    def _unwatch(self, watch: Watch) -> None:
        watches = self._watches.get(watch.request_id)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.request_id]

    def _unlisten(self, listener: Listener) -> None:
        self._listeners.discard(listener)
