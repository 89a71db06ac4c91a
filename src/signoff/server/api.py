"""The HTTP API (CONTRACT.md §3), declared once as a table.

Each :class:`Endpoint` names its method, path, who may call it, its body and query, and
its responses; the same table builds the routes and the OpenAPI document, so the two
cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from signoff.audit import AuditEvent
from signoff.canonical import json_problem
from signoff.errors import (
    BadRequest,
    InvalidArguments,
    PayloadTooLarge,
    RequestTimeout,
    SignoffError,
    Unauthorized,
)
from signoff.events import EventType
from signoff.models import ApprovalRequest, Page, Principal, RequestSpec, Risk, RunRecord, Status
from signoff.problems import from_error, problem, problem_dict, status_for
from signoff.server import sse
from signoff.server.schemas import (
    ApproveIn,
    AuditEventOut,
    AuditOut,
    BatchIn,
    BatchOut,
    CancelIn,
    DecisionBody,
    DecisionIn,
    HealthOut,
    MeOut,
    OutcomeIn,
    RunsOut,
    SignalIn,
    StatsOut,
    TicketOut,
    VerifyOut,
)
from signoff.server.state import AppState
from signoff.stores.base import ListQuery

M = TypeVar("M", bound=BaseModel)

#: how long a client has to send a request's body
BODY_TIMEOUT_S = 30.0
#: the largest id the stores hold (a signed 64-bit integer)
MAX_ID = 2**63 - 1

Who = Literal["anyone", "agent", "approver", "auditor", "caller"]


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    name: str
    summary: str
    who: Who
    handler: Callable[[Ctx], Awaitable[Response]]
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    #: status → response body model (None: the described document is not JSON)
    responses: Mapping[int, type[BaseModel] | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"


@dataclass(slots=True)
class Ctx:
    request: Request
    state: AppState
    principal: Principal | None
    body: Any = None

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)


# -- request helpers -----------------------------------------------------------------------


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body is not valid JSON: {name} is not a JSON number")


async def read_json(request: Request, state: AppState) -> Any:
    """The body as JSON: 413 when too large, 400 when not JSON (NaN and Infinity included),
    422 when nested too deep or holding a string that is not Unicode."""
    limit = state.config.server.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from exc
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("the request needs a JSON body")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if json_depth(value) > state.config.server.max_args_depth + 2:
        raise InvalidArguments(
            f"the body is nested more than {state.config.server.max_args_depth} levels deep"
        )
    if (problem := json_problem(value)) is not None:
        # valid JSON text, but not a value that can be stored, hashed and shown
        raise InvalidArguments(f"the body cannot be used: {problem}")
    return value


def parse(model: type[M], value: Any) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            {
                "loc": list(e["loc"]),
                "msg": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise InvalidArguments(
            f"{where}: {first['msg']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            errors=errors,
        ) from exc


def choice(value: str | None, allowed: list[str], name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidArguments(f"{name} must be one of {allowed}")
    return value


def integer(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidArguments(f"{name} must be a whole number") from exc
    if not low <= number <= high:
        raise InvalidArguments(f"{name} must be between {low} and {high}")
    return number


def via(request: Request) -> str:
    if request.scope.get("signoff.via") == "dashboard":  # set by the session hook
        return "dashboard"
    agent = request.headers.get("user-agent", "")
    return "cli" if agent.startswith("signoff-cli") else "api"


def ok(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


# -- handlers ----------------------------------------------------------------------------


async def create_request(ctx: Ctx) -> Response:
    spec = parse(RequestSpec, ctx.body)
    header_key = ctx.request.headers.get("idempotency-key")
    if header_key and spec.idempotency_key is None:
        spec = spec.model_copy(update={"idempotency_key": header_key[:500]})
    created = await ctx.state.service.submit(spec, ctx.who)
    location = {"Location": f"/v1/requests/{created.request.id}"}
    return ok(created.request, 201 if created.created else 200, location)


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
    return ok(await ctx.state.service.get(ctx.path("id"), ctx.who))


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
    return ok(waiting.result())


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
    request = await ctx.state.service.decide(
        ctx.path("id"),
        ctx.who,
        body.decision,
        reason=body.reason,
        modified_args=modified,
        seen_digest=body.seen_digest,
        via=via(ctx.request),
    )
    ctx.state.metrics.observe_decision(request)
    return ok(request)


async def decide_batch(ctx: Ctx) -> Response:
    body = parse(BatchIn, ctx.body).root
    results = await ctx.state.service.decide_many(
        list(dict.fromkeys(body.ids)),
        ctx.who,
        body.decision,
        reason=body.reason,
        seen_digests=body.seen_digests,
        via=via(ctx.request),
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
    return ok(await ctx.state.service.cancel(ctx.path("id"), ctx.who, body.reason))


async def consume(ctx: Ctx) -> Response:
    return ok(await ctx.state.service.consume(ctx.path("id"), ctx.who))


async def outcome(ctx: Ctx) -> Response:
    body = parse(OutcomeIn, ctx.body)
    return ok(
        await ctx.state.service.record_outcome(ctx.path("id"), ctx.who, body.status, body.detail)
    )


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
    return await sse.response(
        ctx.state.service, ctx.who, last, float(expires) if expires is not None else None, types
    )


async def stream_ticket(ctx: Ctx) -> Response:
    ticket, ttl = ctx.state.tickets.issue(ctx.who)
    return ok(TicketOut(ticket=ticket, expires_in=ttl), 201)


def _audit_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(event.to_dict())


async def audit(ctx: Ctx) -> Response:
    after = integer(ctx.query("after"), "after", 0, 0, 2**62)
    limit = integer(ctx.query("limit"), "limit", 1000, 1, 5000)
    items = await ctx.state.service.audit_events(
        ctx.who, request_id=ctx.query("request_id") or None, after_seq=after, limit=limit + 1
    )
    more = len(items) > limit
    items = items[:limit]
    next_after = items[-1].seq if more and items else None
    return ok(AuditOut(items=[_audit_out(e) for e in items], next_after=next_after))


async def audit_verify(ctx: Ctx) -> Response:
    result = await ctx.state.service.verify_audit(ctx.who)
    return ok(VerifyOut.model_validate(result.to_dict()))


async def audit_export(ctx: Ctx) -> Response:
    request_id = ctx.query("request_id") or None
    service, who = ctx.state.service, ctx.who
    # the first page is read before answering, so that a refusal is a 403, not a cut stream
    first = await service.audit_events(who, request_id=request_id, after_seq=0, limit=1000)

    async def lines() -> AsyncIterator[bytes]:
        page = first
        while page:
            yield "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in page).encode()
            page = await service.audit_events(
                who, request_id=request_id, after_seq=page[-1].seq, limit=1000
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


async def save_run(ctx: Ctx) -> Response:
    record = parse(RunRecord, ctx.body)
    if record.run_id != ctx.path("id"):
        raise InvalidArguments("the body's run_id must be the one in the path")
    return ok(await ctx.state.service.save_run(record, ctx.who))


async def get_run(ctx: Ctx) -> Response:
    return ok(await ctx.state.service.get_run(ctx.path("id"), ctx.who))


async def list_runs(ctx: Ctx) -> Response:
    status = choice(ctx.query("status"), ["running", "finished"], "status")
    limit = integer(ctx.query("limit"), "limit", 100, 1, 500)
    runs = await ctx.state.service.list_runs(ctx.who, status=status, limit=limit)
    return ok(RunsOut(items=runs))


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


async def openapi(ctx: Ctx) -> Response:
    from signoff.server.openapi import document

    return JSONResponse(document())


# -- the table ------------------------------------------------------------------------------

_ID = "{id}"
_LIST_QUERY = (
    Query("status", {"type": "string", "enum": [s.value for s in Status]}, "Only this status."),
    Query("tool", {"type": "string"}, "Only this tool."),
    Query("agent_id", {"type": "string"}, "Only this agent's requests."),
    Query("risk", {"type": "string", "enum": [r.value for r in Risk]}, "Only this risk."),
    Query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."),
    Query("cursor", {"type": "string"}, "next_cursor from the previous page."),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/requests",
        "create_request",
        "Create an approval request",
        "agent",
        create_request,
        body=RequestSpec,
        responses={201: ApprovalRequest, 200: ApprovalRequest},
        errors=(400, 401, 403, 409, 413, 422),
    ),
    Endpoint(
        "GET",
        "/v1/requests",
        "list_requests",
        "List requests, newest first",
        "caller",
        list_requests,
        query=_LIST_QUERY,
        responses={200: Page},
        errors=(401, 422),
    ),
    Endpoint(
        "GET",
        f"/v1/requests/{_ID}",
        "get_request",
        "One request",
        "caller",
        get_request,
        responses={200: ApprovalRequest},
        errors=(401, 403, 404),
    ),
    Endpoint(
        "GET",
        f"/v1/requests/{_ID}/wait",
        "wait_request",
        "Return once the request is no longer pending, or after `timeout` seconds",
        "agent",
        wait_request,
        query=(
            Query(
                "timeout",
                {"type": "number", "minimum": 0, "maximum": 60, "default": 30},
                "Seconds to wait at most (≤ 60).",
            ),
        ),
        responses={200: ApprovalRequest, 204: None},
        errors=(401, 403, 404, 422),
    ),
    Endpoint(
        "POST",
        f"/v1/requests/{_ID}/decisions",
        "decide",
        "Approve or reject",
        "approver",
        decide,
        body=DecisionBody,
        responses={200: ApprovalRequest},
        errors=(400, 401, 403, 404, 409, 413, 422),
    ),
    Endpoint(
        "POST",
        "/v1/decisions",
        "decide_batch",
        "Decide several requests",
        "approver",
        decide_batch,
        body=BatchIn,
        responses={200: BatchOut},
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        "POST",
        f"/v1/requests/{_ID}/cancel",
        "cancel",
        "Cancel a pending request",
        "agent",
        cancel,
        body=CancelIn,
        responses={200: ApprovalRequest},
        errors=(400, 401, 403, 404, 409, 413, 422),
    ),
    Endpoint(
        "POST",
        f"/v1/requests/{_ID}/consume",
        "consume",
        "Claim an approved request for execution (succeeds once)",
        "agent",
        consume,
        responses={200: ApprovalRequest},
        errors=(401, 403, 404, 409),
    ),
    Endpoint(
        "POST",
        f"/v1/requests/{_ID}/outcome",
        "outcome",
        "Report what happened when the tool ran",
        "agent",
        outcome,
        body=OutcomeIn,
        responses={200: ApprovalRequest},
        errors=(400, 401, 403, 404, 409, 413, 422),
    ),
    Endpoint(
        "GET",
        "/v1/events",
        "events",
        "Live events (Server-Sent Events)",
        "caller",
        events,
        query=(
            Query(
                "last_event_id",
                {"type": "integer", "minimum": 0},
                "Resume after this event (the Last-Event-ID header does the same).",
            ),
            Query(
                "types",
                {"type": "string"},
                "Only these event types, comma-separated (e.g. request.decided).",
            ),
            Query(
                "ticket",
                {"type": "string"},
                "A stream ticket, for clients that cannot send headers (EventSource).",
            ),
        ),
        responses={200: None},
        errors=(401, 422),
        content_type="text/event-stream",
    ),
    Endpoint(
        "POST",
        "/v1/stream-tickets",
        "stream_ticket",
        "A single-use ticket (60 s) for opening /v1/events from a browser",
        "caller",
        stream_ticket,
        responses={201: TicketOut},
        errors=(401,),
    ),
    Endpoint(
        "GET",
        "/v1/audit",
        "audit",
        "Audit events, in chain order",
        "auditor",
        audit,
        query=(
            Query("request_id", {"type": "string"}, "Only this request's events."),
            Query("after", {"type": "integer", "minimum": 0}, "Events after this seq."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "Page size."),
        ),
        responses={200: AuditOut},
        errors=(401, 403, 422),
    ),
    Endpoint(
        "GET",
        "/v1/audit/verify",
        "audit_verify",
        "Check the audit chain",
        "auditor",
        audit_verify,
        responses={200: VerifyOut},
        errors=(401, 403),
    ),
    Endpoint(
        "GET",
        "/v1/audit/export",
        "audit_export",
        "The audit log as JSON lines, in chain order (a download)",
        "auditor",
        audit_export,
        query=(Query("request_id", {"type": "string"}, "Only this request's events."),),
        responses={200: None},
        errors=(401, 403),
        content_type="application/x-ndjson",
    ),
    Endpoint(
        "GET",
        "/v1/me",
        "me",
        "Who is calling: subject, kind, role, and the role ladder",
        "caller",
        me,
        responses={200: MeOut},
        errors=(401,),
    ),
    Endpoint(
        "GET",
        "/v1/stats",
        "stats",
        "Time to decision and approval rate per tool, approver and day",
        "approver",
        stats,
        query=(
            Query(
                "since",
                {"type": "string", "default": "7d"},
                "The period's start: a duration back from now (24h, 7d, 30d) or an ISO-8601 time.",
            ),
        ),
        responses={200: StatsOut},
        errors=(401, 403, 422),
    ),
    Endpoint(
        "GET", "/healthz", "healthz", "Liveness", "anyone", healthz, responses={200: HealthOut}
    ),
    Endpoint(
        "GET",
        "/readyz",
        "readyz",
        "Readiness: the store is reachable",
        "anyone",
        readyz,
        responses={200: HealthOut},
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics",
        "anyone",
        metrics,
        responses={200: None},
        content_type="text/plain",
    ),
    Endpoint(
        "GET", "/openapi.json", "openapi", "This document", "anyone", openapi, responses={200: None}
    ),
    Endpoint(
        "PUT",
        f"/v1/runs/{_ID}",
        "save_run",
        "Checkpoint a durable run (its transcript)",
        "agent",
        save_run,
        body=RunRecord,
        responses={200: RunRecord},
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        "GET",
        f"/v1/runs/{_ID}",
        "get_run",
        "A durable run's last checkpoint",
        "caller",
        get_run,
        responses={200: RunRecord},
        errors=(401, 403, 404),
    ),
    Endpoint(
        "GET",
        "/v1/runs",
        "list_runs",
        "Durable runs, most recently updated first",
        "caller",
        list_runs,
        query=(
            Query("status", {"type": "string", "enum": ["running", "finished"]}, "Only these."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "At most this many."),
        ),
        responses={200: RunsOut},
        errors=(401, 422),
    ),
)


async def authenticate(request: Request, state: AppState, endpoint: Endpoint) -> Principal | None:
    if endpoint.who == "anyone":
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await state.verify(token.strip())
    if endpoint.name == "events":
        ticket = request.query_params.get("ticket")
        if ticket:
            return await state.tickets.redeem(ticket)
    session = await state.session_principal(request)
    if session is not None:
        return session
    if header:
        raise Unauthorized("use 'Authorization: Bearer <token>'")
    raise Unauthorized("this endpoint needs 'Authorization: Bearer <token>'")


def handler_for(endpoint: Endpoint, state: AppState) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            principal = await authenticate(request, state, endpoint)
            body = None
            if endpoint.body is not None:
                if endpoint.body is CancelIn and request.headers.get("content-length") in (
                    None,
                    "0",
                ):
                    body = None
                else:
                    body = await read_json(request, state)
            response = await endpoint.handler(Ctx(request, state, principal, body))
        except SignoffError as exc:
            response = from_error(exc, instance=request.url.path)
        status = response.status_code
        state.metrics.observe_http(
            endpoint.name, request.method, status, time.perf_counter() - started
        )
        return response

    return handle
