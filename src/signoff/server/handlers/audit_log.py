"""The audit log: its events, its checkpoints and keys, its verification, and its export as
JSON lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from signoff.audit import AuditEvent, Checkpoint
from signoff.server.bodies import (
    AuditEventOut,
    AuditOut,
    CheckpointOut,
    CheckpointsOut,
    KeysOut,
    VerifyIn,
    VerifyOut,
)
from signoff.server.endpoints import Ctx
from signoff.server.parsing import integer, ok, parse


def _audit_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(event.to_dict())


async def audit(ctx: Ctx) -> Response:
    after = integer(ctx.query("after"), "after", 0, 0, 2**62)
    limit = integer(ctx.query("limit"), "limit", 1000, 1, 5000)
    items = await ctx.state.service.audit_events(
        ctx.who, request_id=ctx.query("request_id") or None, after=after, limit=limit + 1
    )
    more = len(items) > limit
    items = items[:limit]
    next_after = items[-1].position if more and items else None
    return ok(AuditOut(items=[_audit_out(e) for e in items], next_after=next_after))


async def audit_verify(ctx: Ctx) -> Response:
    result = await ctx.state.service.verify_audit(ctx.who)
    return ok(VerifyOut.model_validate(result.to_dict()))


async def audit_verify_against(ctx: Ctx) -> Response:
    body = parse(VerifyIn, ctx.body)
    against = Checkpoint(**body.against.model_dump())
    result = await ctx.state.service.verify_audit(ctx.who, against=against)
    return ok(VerifyOut.model_validate(result.to_dict()))


async def checkpoints(ctx: Ctx) -> Response:
    after = integer(ctx.query("after"), "after", 0, 0, 2**62)
    limit = integer(ctx.query("limit"), "limit", 1000, 1, 5000)
    items = await ctx.state.service.checkpoints(ctx.who, after=after, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return ok(
        CheckpointsOut(
            items=[CheckpointOut(**c.to_dict()) for c in items],
            next_after=items[-1].size if more and items else None,
        )
    )


async def keys(ctx: Ctx) -> Response:
    return ok(KeysOut.model_validate(ctx.state.service.audit_log.keys.public_jwks()))


async def audit_export(ctx: Ctx) -> Response:
    request_id = ctx.query("request_id") or None
    service, who = ctx.state.service, ctx.who
    # the first page is read before answering, so that a refusal is a 403, not a cut stream
    first = await service.audit_events(who, request_id=request_id, after=0, limit=1000)

    async def lines() -> AsyncIterator[bytes]:
        page = first
        while page:
            yield "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in page).encode()
            page = await service.audit_events(
                who, request_id=request_id, after=page[-1].position, limit=1000
            )

    day = service.now().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="signoff-audit-{day}.jsonl"',
            "Cache-Control": "no-store",
        },
    )
