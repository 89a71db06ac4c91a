"""Standing grants: listed by approvers, revoked by their granter or the highest role."""

from __future__ import annotations

from starlette.responses import Response

from signoff.errors import BadRequest
from signoff.server.bodies import GrantOut, GrantsOut
from signoff.server.endpoints import Ctx
from signoff.server.parsing import ok

_BOOLEANS = {"true": True, "false": False, "": None}


async def list_grants(ctx: Ctx) -> Response:
    active = ctx.query("active")
    if active is not None and active not in _BOOLEANS:
        raise BadRequest("active must be true or false")
    limit = ctx.query("limit")
    if limit is not None and (not limit.isdigit() or len(limit) > 6):
        raise BadRequest("limit must be a positive whole number")
    service = ctx.state.service
    found = await service.grants.list(
        ctx.who,
        agent=ctx.query("agent") or None,
        tool=ctx.query("tool") or None,
        active=None if active is None else _BOOLEANS[active],
        limit=100 if not limit else int(limit),
    )
    now = service.now()
    return ok(GrantsOut(items=[GrantOut.model_validate(g.to_dict(now)) for g in found]))


async def revoke_grant(ctx: Ctx) -> Response:
    service = ctx.state.service
    grant = await service.grants.revoke(ctx.path("id"), ctx.who)
    return ok(GrantOut.model_validate(grant.to_dict(service.now())))
