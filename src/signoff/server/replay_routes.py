"""Policy replay over HTTP (the dashboard's Replay page, or any client): what a candidate
policy file would have done with the calls already made (:mod:`signoff.replay`). Declared
like the rest of the API: the same table builds the routes and their part of the OpenAPI
document."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from signoff.replay import MAX_CANDIDATE_BYTES, replay_stored
from signoff.server.endpoints import Ctx, Endpoint
from signoff.server.parsing import ok, parse


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the candidate policy file, as TOML text (its channels and routes are not read)
    config: str = Field(min_length=1, max_length=MAX_CANDIDATE_BYTES)
    #: only calls made in this period back from now ("7d", "24h"); none: the whole history
    since: str | None = Field(default=None, min_length=1, max_length=20)


class ThenOut(BaseModel):
    min_role: str | None
    quorum: int


class ReplayedOut(BaseModel):
    id: str
    source: str
    tool: str
    agent_id: str
    at: datetime
    happened: str
    then: ThenOut
    verdict: str
    min_role: str | None
    quorum: int
    note: str | None
    change: str | None


class ToolCountsOut(BaseModel):
    verdicts: dict[str, int]
    happened: dict[str, int]


class ReplayOut(BaseModel):
    since: datetime | None
    config: str | None
    total: int
    tools: dict[str, ToolCountsOut]
    changed: dict[str, int]
    changes: list[ReplayedOut]
    changes_truncated: bool
    #: what each kind of change means, loudest first
    change_kinds: dict[str, str]


async def replay_policy(ctx: Ctx) -> Response:
    body = parse(ReplayIn, ctx.body)
    service = ctx.state.service
    report = await replay_stored(
        service.store, service.roles, ctx.who, body.config, body.since, datetime.now(UTC)
    )
    return ok(ReplayOut.model_validate(report.to_json()))


REPLAY_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="POST",
        path="/v1/policy/replay",
        name="replay_policy",
        summary="What a candidate policy would have done with the calls already made",
        handler=replay_policy,
        body=ReplayIn,
        responses={200: ReplayOut},
        errors=(400, 401, 403, 413, 422),
    ),
)
