"""``GET /v1/events``: live events as Server-Sent Events, resumable without loss.

The stream is the service's feed (:func:`signoff.follow.follow` over the store and the bus):
subscribe, replay everything after ``Last-Event-ID`` from the store, then live, in id order.
A stream that falls behind is resumed from its last event rather than cut; the client may
also reconnect with ``Last-Event-ID`` at any time and loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from signoff.events import Event
from signoff.models import Principal
from signoff.service import ApprovalService

HEARTBEAT_S = 15
#: the most events sent in one write to the client
BURST = 64
#: how often a stream opened with a revocable token (a device's) checks it still holds
RECHECK_S = 5.0

#: whether the caller's token still holds (a device's may be revoked while its stream is open)
StillValid = Callable[[], Awaitable[bool]]


def visible(event: Event, principal: Principal) -> bool:
    """Approvers see every request's events; an agent sees its own requests' events."""
    return principal.kind == "approver" or event.snapshot.requested_by == principal.sub


def to_sse(event: Event) -> bytes:
    """The event's frame, written here rather than by sse-starlette's general encoder (a
    few percent of a busy server): its JSON is one line, its type and id have no line
    breaks. Should the JSON ever hold one, the general encoder splits it into data lines."""
    data = event.wire()
    if "\n" in data or "\r" in data:
        return ServerSentEvent(data=data, event=event.type, id=str(event.id)).encode()
    return f"id: {event.id}\r\nevent: {event.type}\r\ndata: {data}\r\n\r\n".encode()


async def stream(
    service: ApprovalService,
    principal: Principal,
    after: int,
    *,
    expires_at: float | None = None,
    types: frozenset[str] | None = None,
    still_valid: StillValid | None = None,
) -> AsyncIterator[bytes]:
    """The events after the event id ``after``, of ``types`` when given, for as long as the
    caller may see them: the stream ends when the caller's token expires, or (with
    ``still_valid``) within :data:`RECHECK_S` of its device being revoked."""

    def wanted(event: Event) -> bool:
        return (types is None or event.type in types) and visible(event, principal)

    # the bus wakes this stream only for what it wants: not for every other agent's events
    async with service.follow(after=after, accept=wanted) as feed:
        checked = time.monotonic()
        while True:
            wait: float | None = None
            if expires_at is not None:
                wait = expires_at - time.time()
                if wait <= 0:
                    return
            if still_valid is not None:
                if time.monotonic() - checked >= RECHECK_S:
                    if not await still_valid():
                        return
                    checked = time.monotonic()
                wait = RECHECK_S if wait is None else min(wait, RECHECK_S)
            event = await feed.next(wait)
            if event is None:
                continue  # the token's expiry is checked at the top
            # the events already here go out in one write: a group commit publishes its
            # writes' events together, and each write to the client has a cost of its own
            frames = [to_sse(event)] if wanted(event) else []
            while len(frames) < BURST and (more := await feed.next(0)) is not None:
                if wanted(more):
                    frames.append(to_sse(more))
            if frames:
                yield b"".join(frames)


async def response(
    service: ApprovalService,
    principal: Principal,
    last_event_id: int | None,
    expires_at: float | None,
    types: frozenset[str] | None = None,
    still_valid: StillValid | None = None,
) -> EventSourceResponse:
    """The stream of events after ``last_event_id``, or from now. "Now" is read before the
    response starts: a client that sees the stream open (and then reads the current state)
    gets every event after that moment, none lost in between."""
    after = last_event_id if last_event_id is not None else await service.store.last_event_id()
    headers: dict[str, Any] = {"Cache-Control": "no-store"}
    return EventSourceResponse(
        stream(
            service, principal, after, expires_at=expires_at, types=types, still_valid=still_valid
        ),
        ping=HEARTBEAT_S,
        send_timeout=30,
        headers=headers,
    )
