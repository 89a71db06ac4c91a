"""Following live events: the one way to subscribe, read, follow, and resume after the last
id across reconnects.

    feed = follow(source, after=None, on_open=reread)
    async with feed:                     # subscribed: nothing after this moment is missed
        state = await read_the_state()   # (or let on_open do it at every opening)
        while (event := await feed.next(timeout)) is not None:
            ...

A :class:`Source` opens a :class:`Stream` of events after a given id (``None``: from the
moment it opens). A stream may break (:class:`Interrupted`: a dropped connection, a consumer
that fell behind); the feed then opens a new one after the last id it delivered, with a
growing pause, so events are neither lost nor repeated. ``on_open`` runs at every opening,
for consumers that keep state (a waiting call re-reads its request; a queue re-lists what
is pending). Errors in ``fatal`` end the feed instead (a refused token).

The sources: :class:`signoff.bus.replay.StoreEvents` (the store's events, woken by the bus:
SSE streams, in-process approvers), :class:`signoff.bus.replay.RequestEvents` (one request's
changes: a waiting call) and the HTTP client's event stream (remote gates, ``signoff
watch``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar


class HasId(Protocol):
    @property
    def id(self) -> int: ...


E = TypeVar("E", bound=HasId)
E_co = TypeVar("E_co", bound=HasId, covariant=True)


class Interrupted(Exception):
    """The stream broke; open a new one after the last event delivered."""


class Stream(Protocol[E_co]):
    """One opening of a source: the events after the id it was opened with, then live."""

    async def next(self, timeout: float | None) -> E_co | None:
        """The next event, or None when none came within ``timeout`` seconds. Raises
        :class:`Interrupted` when the stream broke."""

    async def aclose(self) -> None: ...


class Source(Protocol[E_co]):
    async def open(self, after: int | None) -> Stream[E_co]:
        """Subscribe, then return a stream of the events after ``after`` (``None``: from
        now). Raises :class:`Interrupted` when it cannot open yet."""


OnOpen = Callable[[], Awaitable[None]]


class Feed(Generic[E]):
    """Events from a source, resumed after the last one across broken streams."""

    # thousands of calls may wait at once, each on a feed of its own request
    __slots__ = (
        "_fatal",
        "_max_retry_s",
        "_on_open",
        "_retry_s",
        "_source",
        "_stream",
        "last_id",
        "openings",
    )

    def __init__(
        self,
        source: Source[E],
        *,
        after: int | None = None,
        on_open: OnOpen | None = None,
        fatal: tuple[type[BaseException], ...] = (),
        retry_s: float = 0.1,
        max_retry_s: float = 5.0,
    ) -> None:
        self._source = source
        self.last_id = after
        self._on_open = on_open
        self._fatal = fatal
        self._retry_s, self._max_retry_s = retry_s, max_retry_s
        self._stream: Stream[E] | None = None
        #: how many times a stream has opened: equal before and after something happened
        #: means the feed was open, without a break, all along
        self.openings = 0

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    async def __aenter__(self) -> Self:
        await self._open(deadline=None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()

    async def next(self, timeout: float | None = None) -> E | None:
        """The next event, or None after ``timeout`` seconds without one (reopening a broken
        stream counts against the timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stream is None and not await self._open(deadline):
                return None
            assert self._stream is not None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = await self._stream.next(left)
            except Interrupted:
                await self.aclose()
                continue
            if event is None:
                return None
            self.last_id = event.id
            return event

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> E:
        event = await self.next()
        assert event is not None  # without a timeout, next() only returns an event
        return event

    async def _open(self, deadline: float | None) -> bool:
        """Open a stream, retrying with growing pauses; False when the deadline passes."""
        delay = self._retry_s
        while True:
            try:
                self._stream = await self._source.open(self.last_id)
            except self._fatal:
                raise
            except Interrupted:
                pass
            else:
                self.openings += 1
                if self._on_open is not None:
                    await self._on_open()
                return True
            pause = delay
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
                if pause <= 0:
                    return False
            await asyncio.sleep(pause)
            delay = min(delay * 2, self._max_retry_s)


def follow(
    source: Source[E],
    *,
    after: int | None = None,
    on_open: OnOpen | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> Feed[E]:
    """A :class:`Feed` of ``source``'s events after ``after`` (None: from when it opens)."""
    return Feed(source, after=after, on_open=on_open, fatal=fatal)
