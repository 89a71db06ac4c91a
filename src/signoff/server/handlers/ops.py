"""Who am I, statistics, health, readiness and metrics."""

from __future__ import annotations

from starlette.responses import Response

from signoff.errors import SignoffError
from signoff.problems import problem
from signoff.server.bodies import HealthOut, MeOut
from signoff.server.endpoints import Ctx
from signoff.server.parsing import ok


async def me(ctx: Ctx) -> Response:
    roles = ctx.state.config.roles
    who = ctx.who
    name = who.claims.get("name")
    return ok(
        MeOut(
            sub=who.sub,
            kind=who.kind,
            role=who.role,
            roles=list(roles.roles),
            auditor=who.kind == "approver" and who.role == roles.highest,
            name=name if isinstance(name, str) else None,
            server_time=ctx.state.service.now(),
        )
    )


async def stats(ctx: Ctx) -> Response:
    return ok(await ctx.state.stats.get(ctx.state.service, ctx.who, ctx.query("since")))


async def healthz(ctx: Ctx) -> Response:
    return ok(HealthOut(status="ok"))


async def readyz(ctx: Ctx) -> Response:
    try:
        await ctx.state.service.store.ping()
    except SignoffError as exc:
        return problem(503, f"the store is not reachable: {exc.message}", code="not_ready")
    return ok(HealthOut(status="ready"))


async def metrics(ctx: Ctx) -> Response:
    body = await ctx.state.metrics.render(ctx.state.service.store)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
