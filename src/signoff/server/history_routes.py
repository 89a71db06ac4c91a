"""An agent's own history of calls (session-aware limits on a gate that talks to a server):
read it, and record a call a limit let run without asking. Declared like the rest of the
API: the same table builds the routes and their part of the OpenAPI document."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from signoff.errors import InvalidArguments
from signoff.models import Run
from signoff.server.endpoints import Ctx, Endpoint, Query
from signoff.server.parsing import ok, parse
from signoff.shadow import ShadowRecord


class HistoryItemOut(BaseModel):
    tool: str
    run_id: str | None
    at: datetime
    args: dict[str, Any]
    #: pending, or approved and not yet used: it may still run
    in_flight: bool
    #: a ledger row's id (a call that ran, or is reserved to run, without asking), else null
    execution_id: str | None = None


class HistoryOut(BaseModel):
    now: datetime
    since: datetime
    items: list[HistoryItemOut]


class ExecutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1, max_length=200)
    args: dict[str, Any]
    run_id: str | None = Field(default=None, max_length=200)


class ExecutionOut(BaseModel):
    id: str


async def read_history(ctx: Ctx) -> Response:
    raw = ctx.query("lookback_s")
    try:
        lookback = float(raw) if raw is not None else math.nan
    except ValueError:
        lookback = math.nan
    if not math.isfinite(lookback):
        raise InvalidArguments("lookback_s must be a number of seconds")
    rows, now, start = await ctx.state.service.histories.read(ctx.who, lookback)
    items = [
        HistoryItemOut(
            tool=r.tool,
            run_id=r.run_id,
            at=r.at,
            args=r.args,
            in_flight=r.in_flight,
            execution_id=r.execution_id,
        )
        for r in rows
    ]
    return ok(HistoryOut(now=now, since=start, items=items))


async def record_execution(ctx: Ctx) -> Response:
    body = parse(ExecutionIn, ctx.body)
    done = await ctx.state.service.histories.record(ctx.who, body.tool, body.args, body.run_id)
    return ok(ExecutionOut(id=done.id))


class ShadowIn(BaseModel):
    """What a shadow-mode tool's policy would have done with one call, as the agent's own
    gate judged it (``mode = "shadow"``: the call ran without asking)."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1, max_length=200)
    verdict: Literal["run", "ask", "deny"]
    args: dict[str, Any]
    run_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    tool_call_id: str | None = Field(default=None, max_length=500)
    min_role: str | None = Field(default=None, max_length=100)
    quorum: int = Field(default=1, ge=1, le=100)
    reason: str | None = Field(default=None, max_length=10_000)
    note: str | None = Field(default=None, max_length=2_000)


class ShadowOut(BaseModel):
    tool: str
    verdict: str
    agent_id: str
    at: datetime


async def record_shadow(ctx: Ctx) -> Response:
    body = parse(ShadowIn, ctx.body)
    given = ShadowRecord(
        tool=body.tool,
        verdict=body.verdict,
        args=body.args,
        # the agent is the token's: the book sets it, and the time, whatever was sent
        run=Run(agent_id=ctx.who.sub, run_id=body.run_id, session_id=body.session_id),
        at=datetime.now(UTC),
        min_role=body.min_role,
        quorum=body.quorum,
        reason=body.reason,
        note=body.note,
        tool_call_id=body.tool_call_id,
    )
    done = await ctx.state.service.histories.record_shadow(ctx.who, given)
    out = ShadowOut(tool=done.tool, verdict=done.verdict, agent_id=done.run.agent_id, at=done.at)
    return ok(out, 201)


async def void_execution(ctx: Ctx) -> Response:
    await ctx.state.service.histories.void(ctx.who, ctx.path("id"))
    return ok(ExecutionOut(id=ctx.path("id")))


HISTORY_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="GET",
        path="/v1/history",
        name="read_history",
        summary="The calling agent's own calls in a window (for session-aware limits)",
        handler=read_history,
        query=(
            Query(
                "lookback_s",
                {"type": "number", "exclusiveMinimum": 0, "maximum": 366 * 86400},
                "How far back, in seconds.",
            ),
        ),
        responses={200: HistoryOut},
        errors=(401, 403, 422),
    ),
    Endpoint(
        method="POST",
        path="/v1/executions",
        name="record_execution",
        summary="Record a call a session-aware limit let the calling agent run unasked",
        handler=record_execution,
        body=ExecutionIn,
        responses={200: ExecutionOut},
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        method="POST",
        path="/v1/shadow-verdicts",
        name="record_shadow",
        summary="Audit what a shadow-mode policy would have done with one of the agent's calls",
        handler=record_shadow,
        body=ShadowIn,
        responses={201: ShadowOut},
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/executions/{id}",
        name="void_execution",
        summary="Withdraw a reservation: the call asked, or was denied, instead of running",
        handler=void_execution,
        responses={200: ExecutionOut},
        errors=(401, 403, 404),
    ),
)
