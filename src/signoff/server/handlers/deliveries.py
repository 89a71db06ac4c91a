"""The outbox's deliveries: listed and retried by the highest role (docs/api.md)."""

from __future__ import annotations

from starlette.responses import Response

from signoff import deliveries
from signoff.errors import BadRequest
from signoff.server.bodies import DeliveriesOut, DeliveryOut
from signoff.server.endpoints import Ctx
from signoff.server.parsing import ok


async def list_deliveries(ctx: Ctx) -> Response:
    given = _number(ctx.query("limit"), "limit")
    limit = 100 if given is None else given
    deliveries.query(limit=limit)  # checked before the page's extra row is added
    wanted = deliveries.query(
        status=ctx.query("status") or None,
        channel=ctx.query("channel") or None,
        request_id=ctx.query("request_id") or None,
        limit=limit + 1,
        before=_number(ctx.query("before"), "before"),
    )
    found = await deliveries.Deliveries(ctx.state.service).list(ctx.who, wanted)
    more = len(found) > limit
    found = found[:limit]
    return ok(
        DeliveriesOut(
            items=[DeliveryOut.model_validate(d.to_dict()) for d in found],
            next_before=found[-1].seq if more and found else None,
        )
    )


def _number(value: str | None, name: str) -> int | None:
    """A whole number from the query; a filter that is not one is a 400."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadRequest(f"{name} must be a positive whole number")
    return int(value)


async def retry_delivery(ctx: Ctx) -> Response:
    found = await deliveries.Deliveries(ctx.state.service).retry(ctx.who, ctx.path("id"))
    if ctx.state.channels is not None:
        ctx.state.channels.worker.wake()  # this replica sends it now; others on their timer
    return ok(DeliveryOut.model_validate(found.to_dict()))
