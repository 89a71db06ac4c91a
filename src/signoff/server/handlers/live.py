"""Live events (Server-Sent Events) and the single-use tickets browsers open them with."""

from __future__ import annotations

import functools
import time

from starlette.responses import Response

from signoff.errors import InvalidArguments, Unauthorized
from signoff.events import EventType
from signoff.server import sse
from signoff.server.bodies import TicketOut
from signoff.server.endpoints import Ctx
from signoff.server.parsing import MAX_ID, ok


async def events(ctx: Ctx) -> Response:
    raw = ctx.request.headers.get("last-event-id") or ctx.query("last_event_id")
    last: int | None = None
    if raw not in (None, ""):
        try:
            last = int(str(raw))
        except ValueError as exc:
            raise InvalidArguments("Last-Event-ID must be an event id (a whole number)") from exc
        if not 0 <= last <= MAX_ID:
            raise InvalidArguments(f"Last-Event-ID must be between 0 and {MAX_ID}")
    types = None
    if raw_types := ctx.query("types"):
        types = frozenset(t.strip() for t in raw_types.split(",") if t.strip())
        unknown = sorted(types - {t.value for t in EventType})
        if unknown:
            known = sorted(t.value for t in EventType)
            raise InvalidArguments(f"unknown event types {unknown}; the types are {known}")
    ctx.state.service.require_reader(ctx.who)
    expires = ctx.who.claims.get("exp")
    if expires is not None and float(expires) <= time.time():
        # accepted within the clock-skew leeway, but a stream ends at the token's expiry:
        # this one would end at once, so say why instead (a client then stops reconnecting)
        raise Unauthorized("the token has expired")
    device = ctx.who.claims.get("dev")
    still_valid = None
    if isinstance(device, str):
        # a device can be signed out while its stream is open: the stream ends with it
        still_valid = functools.partial(ctx.state.devices.is_active, device)
    return await sse.response(
        ctx.state.service,
        ctx.who,
        last,
        float(expires) if expires is not None else None,
        types,
        still_valid,
    )


async def stream_ticket(ctx: Ctx) -> Response:
    ticket, ttl = ctx.state.tickets.issue(ctx.who)
    return ok(TicketOut(ticket=ticket, expires_in=ttl), 201)
