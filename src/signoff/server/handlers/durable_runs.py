"""Durable runs' checkpoints."""

from __future__ import annotations

from starlette.responses import Response

from signoff.errors import InvalidArguments
from signoff.models import RunRecord
from signoff.server.bodies import RunsOut
from signoff.server.endpoints import Ctx
from signoff.server.parsing import choice, integer, ok, parse


async def save_run(ctx: Ctx) -> Response:
    record = parse(RunRecord, ctx.body)
    if record.run_id != ctx.path("id"):
        raise InvalidArguments("the body's run_id must be the one in the path")
    return ok(await ctx.state.service.runs.save(record, ctx.who))


async def get_run(ctx: Ctx) -> Response:
    return ok(await ctx.state.service.runs.get(ctx.path("id"), ctx.who))


async def list_runs(ctx: Ctx) -> Response:
    status = choice(ctx.query("status"), ["running", "finished"], "status")
    limit = integer(ctx.query("limit"), "limit", 100, 1, 500)
    runs = await ctx.state.service.runs.list(ctx.who, status=status, limit=limit)
    return ok(RunsOut(items=runs))
