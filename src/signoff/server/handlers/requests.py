"""Approval requests: create, list, read, wait, decide (one or many), cancel, consume, outcome."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from signoff.errors import InvalidArguments
from signoff.models import ApprovalRequest, RequestSpec, Risk, Status
from signoff.problems import problem_dict, status_for
from signoff.server.bodies import (
    ApproveIn,
    BatchApproveIn,
    BatchIn,
    BatchOut,
    BatchRespondIn,
    CancelIn,
    DecisionIn,
    OutcomeIn,
    RespondIn,
    SignalIn,
)
from signoff.server.endpoints import Ctx
from signoff.server.parsing import choice, integer, ok, parse, via
from signoff.stores.base import ListQuery


def answer(
    ctx: Ctx, request: ApprovalRequest, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``request`` as the answer's JSON: the text the store wrote for it when it still has it
    (the write this request made), rather than serializing it again."""
    text = ctx.state.service.store.request_json(request)
    return Response(text, status_code=status, media_type="application/json", headers=headers)


async def create_request(ctx: Ctx) -> Response:
    spec = parse(RequestSpec, ctx.body)
    header_key = ctx.request.headers.get("idempotency-key")
    if header_key and spec.idempotency_key is None:
        spec = spec.model_copy(update={"idempotency_key": header_key[:500]})
    created = await ctx.state.service.submit(spec, ctx.who)
    location = {"Location": f"/v1/requests/{created.request.id}"}
    return answer(ctx, created.request, 201 if created.created else 200, location)


async def list_requests(ctx: Ctx) -> Response:
    query = ListQuery(
        status=choice(ctx.query("status"), [s.value for s in Status], "status"),
        tool=ctx.query("tool") or None,
        agent_id=ctx.query("agent_id") or None,
        risk=choice(ctx.query("risk"), [r.value for r in Risk], "risk"),
        limit=integer(ctx.query("limit"), "limit", 50, 1, 200),
        cursor=ctx.query("cursor") or None,
    )
    return ok(await ctx.state.service.list_requests(query, ctx.who))


async def get_request(ctx: Ctx) -> Response:
    return answer(ctx, await ctx.state.service.get(ctx.path("id"), ctx.who))


async def wait_request(ctx: Ctx) -> Response:
    raw = ctx.query("timeout")
    try:
        timeout = 30.0 if raw in (None, "") else float(raw)
    except ValueError as exc:
        raise InvalidArguments("timeout must be a number of seconds") from exc
    if not 0 <= timeout <= 60:
        raise InvalidArguments("timeout must be between 0 and 60 seconds")
    waiting = asyncio.ensure_future(ctx.state.service.wait(ctx.path("id"), ctx.who, timeout))
    gone = asyncio.ensure_future(_disconnected(ctx.request))
    try:
        done, _ = await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not waiting.done():
            waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if waiting not in done:
        # the client went away; nobody will read this
        return Response(status_code=204)
    return answer(ctx, waiting.result())


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def decide(ctx: Ctx) -> Response:
    if isinstance(ctx.body, dict) and "approved" in ctx.body and "decision" not in ctx.body:
        body = parse(DecisionIn, parse(SignalIn, ctx.body).as_decision()).root
    else:
        body = parse(DecisionIn, ctx.body).root
    modified = body.modified_args if isinstance(body, ApproveIn) else None
    grant = body.grant.model_dump() if isinstance(body, ApproveIn) and body.grant else None
    response = body.response if isinstance(body, RespondIn) else None
    request = await ctx.state.service.decide(
        ctx.path("id"),
        ctx.who,
        body.decision,
        reason=body.reason,
        modified_args=modified,
        seen_digest=body.seen_digest,
        via=via(ctx.request),
        grant=grant,
        response=response,
    )
    ctx.state.metrics.observe_decision(request)
    return answer(ctx, request)


async def decide_batch(ctx: Ctx) -> Response:
    body = parse(BatchIn, ctx.body).root
    grant = body.grant.model_dump() if isinstance(body, BatchApproveIn) and body.grant else None
    results = await ctx.state.service.decide_many(
        list(dict.fromkeys(body.ids)),
        ctx.who,
        body.decision,
        reason=body.reason,
        seen_digests=body.seen_digests,
        via=via(ctx.request),
        grant=grant,
        response=body.response if isinstance(body, BatchRespondIn) else None,
    )
    out: list[dict[str, Any]] = []
    for request_id, result in results:
        if isinstance(result, ApprovalRequest):
            ctx.state.metrics.observe_decision(result)
            out.append({"id": request_id, "status": 200, "request": result})
        else:
            out.append(
                {"id": request_id, "status": status_for(result), "problem": problem_dict(result)}
            )
    return ok(BatchOut.model_validate({"results": out}))


async def cancel(ctx: Ctx) -> Response:
    body = parse(CancelIn, ctx.body if ctx.body is not None else {})
    return answer(ctx, await ctx.state.service.cancel(ctx.path("id"), ctx.who, body.reason))


async def consume(ctx: Ctx) -> Response:
    return answer(ctx, await ctx.state.service.consume(ctx.path("id"), ctx.who))


async def outcome(ctx: Ctx) -> Response:
    body = parse(OutcomeIn, ctx.body)
    done = await ctx.state.service.record_outcome(ctx.path("id"), ctx.who, body.status, body.detail)
    return answer(ctx, done)
