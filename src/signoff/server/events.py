"""``GET /v1/events``: live events as Server-Sent Events, resumable without loss.

Subscribe to the bus first, then replay everything after ``Last-Event-ID`` from the store,
then stream. The bus is only a wake-up: events are sent in id order, and when the next id
is not the one that arrived (another process wrote it, or this stream fell behind), the
stream reads the store to fill the gap. A client too slow to keep up is dropped (its
buffer is bounded); it reconnects with ``Last-Event-ID`` and loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from signoff.bus.base import ListenerDropped
from signoff.events import Event
from signoff.models import Principal
from signoff.service import ApprovalService

#: events a stream may have waiting for it before it counts as too slow and is dropped
CLIENT_BUFFER = 1000
HEARTBEAT_S = 15
REPLAY_BATCH = 500


def visible(event: Event, principal: Principal) -> bool:
    """Approvers see every request's events; an agent sees its own requests' events."""
    return principal.kind == "approver" or event.snapshot.requested_by == principal.sub


def to_sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=event.wire(), event=event.type, id=str(event.id))


async def stream(
    service: ApprovalService,
    principal: Principal,
    after: int,
    *,
    expires_at: float | None = None,
    types: frozenset[str] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The events after the event id ``after``, of ``types`` when given, for as long as the
    caller may see them: the stream ends when the caller's token expires."""

    def wanted(event: Event) -> bool:
        return (types is None or event.type in types) and visible(event, principal)

    listener = service.bus.listen(maxsize=CLIENT_BUFFER)
    try:
        cursor = after
        while True:
            batch = await service.store.events_after(cursor, REPLAY_BATCH)
            for event in batch:
                cursor = event.id
                if wanted(event):
                    yield to_sse(event)
            if len(batch) < REPLAY_BATCH:
                break
        while True:
            wait: float = HEARTBEAT_S
            if expires_at is not None:
                wait = min(wait, expires_at - time.time())
                if wait <= 0:
                    return
            try:
                arrived = await listener.get(timeout=wait)
            except ListenerDropped:
                return
            if arrived is None or arrived.id <= cursor:
                continue
            pending: list[Event] = [arrived]
            if arrived.id != cursor + 1:
                # a gap: events this process did not publish, or ones it has not seen yet
                pending = await service.store.events_after(cursor, REPLAY_BATCH)
            for item in pending:
                if item.id <= cursor:
                    continue
                cursor = item.id
                if wanted(item):
                    yield to_sse(item)
    finally:
        listener.close()


async def response(
    service: ApprovalService,
    principal: Principal,
    last_event_id: int | None,
    expires_at: float | None,
    types: frozenset[str] | None = None,
) -> EventSourceResponse:
    """The stream of events after ``last_event_id``, or from now. "Now" is read before the
    response starts: a client that sees the stream open (and then reads the current state)
    gets every event after that moment, none lost in between."""
    after = last_event_id if last_event_id is not None else await service.store.last_event_id()
    headers: dict[str, Any] = {"Cache-Control": "no-store"}
    return EventSourceResponse(
        stream(service, principal, after, expires_at=expires_at, types=types),
        ping=HEARTBEAT_S,
        send_timeout=30,
        headers=headers,
    )
