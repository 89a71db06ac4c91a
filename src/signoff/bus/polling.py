"""The bus for a store that other processes share without a notification channel (a SQLite
file): this process's own events are delivered at once, and other processes' events are
picked up by tailing the store's event log every ``interval`` seconds. A store that knows
which positions it wrote itself (:mod:`signoff.stores.own_writes`) lets the tail step over
them instead of reading them back."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from signoff._util import stop_task
from signoff.bus.base import Bus
from signoff.bus.readback import EventSource

log = logging.getLogger(__name__)


@runtime_checkable
class KnowsOwnWrites(Protocol):
    def own_through(self, after: int) -> int:
        """The furthest position up to which every event after ``after`` is this process's
        own (``after`` itself when the next one may not be)."""
        ...


class PollingBus(Bus):
    def __init__(self, interval: float = 0.2) -> None:
        super().__init__()
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last_id = 0

    async def start(self, source: EventSource) -> None:
        if self._task is None:
            await super().start(source)
            self._last_id = await source.last_event_id()
            self._task = asyncio.create_task(self._tail(source), name="signoff-bus-tail")

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None
        await super().aclose()

    async def _tail(self, source: EventSource) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if isinstance(source, KnowsOwnWrites):
                    self._last_id = source.own_through(self._last_id)
                if not self._watches and not self._listeners:
                    # nobody to wake: skip reading the events, just keep our place
                    newest = await source.last_event_id()
                    if newest > self._last_id:
                        self.forget_latest()  # others' events passed by unread
                    self._last_id = newest
                    continue
                events = await source.events_after(self._last_id)
            except Exception:
                log.exception("signoff: reading other processes' events failed; retrying")
                continue
            for event in events:
                self._last_id = max(self._last_id, event.id)
                self.deliver(event)
