"""The HTTP API (docs/api.md), declared once as a table.

Each :class:`Endpoint` names its method, path, body, query and responses; the same table
builds the routes and the OpenAPI document, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from signoff.models import ApprovalRequest, Page, RequestSpec, Risk, RunRecord, Status
from signoff.server.bodies import (
    AuditOut,
    BatchIn,
    BatchOut,
    CancelIn,
    CheckpointsOut,
    DecisionBody,
    DeliveriesOut,
    DeliveryOut,
    GrantOut,
    GrantsOut,
    HealthOut,
    KeysOut,
    MeOut,
    OutcomeIn,
    RunsOut,
    StatsOut,
    TicketOut,
    VerifyIn,
    VerifyOut,
)
from signoff.server.device_routes import DEVICE_ENDPOINTS
from signoff.server.endpoints import Ctx, Endpoint, Query
from signoff.server.handlers.audit_log import (
    audit,
    audit_export,
    audit_verify,
    audit_verify_against,
    checkpoints,
    keys,
)
from signoff.server.handlers.deliveries import list_deliveries, retry_delivery
from signoff.server.handlers.durable_runs import get_run, list_runs, save_run
from signoff.server.handlers.grants import list_grants, revoke_grant
from signoff.server.handlers.live import events, stream_ticket
from signoff.server.handlers.ops import healthz, me, metrics, readyz, stats
from signoff.server.handlers.requests import (
    cancel,
    consume,
    create_request,
    decide,
    decide_batch,
    get_request,
    list_requests,
    outcome,
    wait_request,
)
from signoff.server.history_routes import HISTORY_ENDPOINTS
from signoff.server.openapi import document
from signoff.server.replay_routes import REPLAY_ENDPOINTS


async def openapi(ctx: Ctx) -> Response:
    return JSONResponse(_document())


_document_cache: list[dict[str, Any]] = []


def _document() -> dict[str, Any]:
    if not _document_cache:
        _document_cache.append(document(ENDPOINTS))
    return _document_cache[0]


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
        method="POST",
        path="/v1/requests",
        name="create_request",
        summary="Create an approval request",
        handler=create_request,
        body=RequestSpec,
        responses={201: ApprovalRequest, 200: ApprovalRequest},
        errors=(400, 401, 403, 409, 413, 422),
        links=True,
    ),
    Endpoint(
        method="GET",
        path="/v1/requests",
        name="list_requests",
        summary="List requests, newest first",
        handler=list_requests,
        query=_LIST_QUERY,
        responses={200: Page},
        errors=(401, 422),
    ),
    Endpoint(
        method="GET",
        path=f"/v1/requests/{_ID}",
        name="get_request",
        summary="One request",
        handler=get_request,
        responses={200: ApprovalRequest},
        errors=(401, 403, 404),
    ),
    Endpoint(
        method="GET",
        path=f"/v1/requests/{_ID}/wait",
        name="wait_request",
        summary="Return once the request is no longer pending, or after `timeout` seconds",
        handler=wait_request,
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
        method="POST",
        path=f"/v1/requests/{_ID}/decisions",
        name="decide",
        summary="Approve, reject or respond",
        handler=decide,
        body=DecisionBody,
        responses={200: ApprovalRequest},
        errors=(400, 401, 403, 404, 409, 413, 422),
    ),
    Endpoint(
        method="POST",
        path="/v1/decisions",
        name="decide_batch",
        summary="Decide several requests",
        handler=decide_batch,
        body=BatchIn,
        responses={200: BatchOut},
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        method="POST",
        path=f"/v1/requests/{_ID}/cancel",
        name="cancel",
        summary="Cancel a pending request",
        handler=cancel,
        body=CancelIn,
        responses={200: ApprovalRequest},
        errors=(400, 401, 403, 404, 409, 413, 422),
        optional_body=True,
    ),
    Endpoint(
        method="POST",
        path=f"/v1/requests/{_ID}/consume",
        name="consume",
        summary="Claim an approved request for execution (succeeds once)",
        handler=consume,
        responses={200: ApprovalRequest},
        errors=(401, 403, 404, 409),
    ),
    Endpoint(
        method="POST",
        path=f"/v1/requests/{_ID}/outcome",
        name="outcome",
        summary="Report what happened when the tool ran",
        handler=outcome,
        body=OutcomeIn,
        responses={200: ApprovalRequest},
        errors=(400, 401, 403, 404, 409, 413, 422),
    ),
    Endpoint(
        method="GET",
        path="/v1/events",
        name="events",
        summary="Live events (Server-Sent Events)",
        handler=events,
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
        ticket_auth=True,
    ),
    Endpoint(
        method="POST",
        path="/v1/stream-tickets",
        name="stream_ticket",
        summary="A single-use ticket (60 s) for opening /v1/events from a browser",
        handler=stream_ticket,
        responses={201: TicketOut},
        errors=(401,),
    ),
    Endpoint(
        method="GET",
        path="/v1/deliveries",
        name="deliveries",
        summary="The outbox's deliveries, newest first (the highest role only)",
        handler=list_deliveries,
        query=(
            Query(
                "status",
                {"type": "string", "enum": ["pending", "delivered", "failed"]},
                "Only deliveries in this status.",
            ),
            Query("channel", {"type": "string"}, "Only this channel's."),
            Query("request_id", {"type": "string"}, "Only this request's."),
            Query("before", {"type": "integer", "minimum": 1}, "Older than this (paging)."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size."),
        ),
        responses={200: DeliveriesOut},
        errors=(400, 401, 403, 422),
    ),
    Endpoint(
        method="POST",
        path="/v1/deliveries/{id}/retry",
        name="retry_delivery",
        summary="Try a failed delivery again now, with a fresh round of attempts",
        handler=retry_delivery,
        responses={200: DeliveryOut},
        errors=(401, 403, 404, 409),
    ),
    Endpoint(
        method="GET",
        path="/v1/grants",
        name="grants",
        summary="Standing grants, newest first (approvers)",
        handler=list_grants,
        query=(
            Query("agent", {"type": "string"}, "Only this agent's."),
            Query("tool", {"type": "string"}, "Only this tool's."),
            Query("active", {"type": "boolean"}, "Only live ones (true) or ended ones (false)."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "How many."),
        ),
        responses={200: GrantsOut},
        errors=(400, 401, 403, 422),
    ),
    Endpoint(
        method="DELETE",
        path=f"/v1/grants/{_ID}",
        name="revoke_grant",
        summary="Revoke a standing grant, at once on every replica (its granter or the top role)",
        handler=revoke_grant,
        responses={200: GrantOut},
        errors=(401, 403, 404, 409),
    ),
    Endpoint(
        method="GET",
        path="/v1/audit",
        name="audit",
        summary="Audit events, in log order (each with its seal once sealed)",
        handler=audit,
        query=(
            Query("request_id", {"type": "string"}, "Only this request's events."),
            Query("after", {"type": "integer", "minimum": 0}, "Events after this position."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "Page size."),
        ),
        responses={200: AuditOut},
        errors=(401, 403, 422),
    ),
    Endpoint(
        method="GET",
        path="/v1/audit/verify",
        name="audit_verify",
        summary="Check the audit log: chain, signed checkpoints, requests against their events",
        handler=audit_verify,
        responses={200: VerifyOut},
        errors=(401, 403),
    ),
    Endpoint(
        method="POST",
        path="/v1/audit/verify",
        name="audit_verify_against",
        summary="Check the audit log against a checkpoint exported earlier (a cut-off tail)",
        handler=audit_verify_against,
        body=VerifyIn,
        responses={200: VerifyOut},
        errors=(400, 401, 403, 422),
    ),
    Endpoint(
        method="GET",
        path="/v1/audit/checkpoints",
        name="audit_checkpoints",
        summary="The signed checkpoints, oldest first (keep them elsewhere)",
        handler=checkpoints,
        query=(
            Query("after", {"type": "integer", "minimum": 0}, "Checkpoints after this size."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "Page size."),
        ),
        responses={200: CheckpointsOut},
        errors=(401, 403, 422),
    ),
    Endpoint(
        method="GET",
        path="/v1/audit/keys",
        name="audit_keys",
        summary="The public keys that verify the checkpoints (JWKS)",
        handler=keys,
        responses={200: KeysOut},
        public=True,
    ),
    Endpoint(
        method="GET",
        path="/.well-known/jwks.json",
        name="jwks",
        summary="The public keys that verify approval receipts and audit checkpoints (JWKS)",
        handler=keys,
        responses={200: KeysOut},
        public=True,
    ),
    Endpoint(
        method="GET",
        path="/v1/audit/export",
        name="audit_export",
        summary="The audit log as JSON lines, in log order (a download)",
        handler=audit_export,
        query=(Query("request_id", {"type": "string"}, "Only this request's events."),),
        responses={200: None},
        errors=(401, 403),
        content_type="application/x-ndjson",
    ),
    Endpoint(
        method="GET",
        path="/v1/me",
        name="me",
        summary="Who is calling: subject, kind, role, and the role ladder",
        handler=me,
        responses={200: MeOut},
        errors=(401,),
    ),
    Endpoint(
        method="GET",
        path="/v1/stats",
        name="stats",
        summary="Time to decision and approval rate per tool, approver and day",
        handler=stats,
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
        method="GET",
        path="/healthz",
        name="healthz",
        summary="Liveness",
        handler=healthz,
        responses={200: HealthOut},
        public=True,
    ),
    Endpoint(
        method="GET",
        path="/readyz",
        name="readyz",
        summary="Readiness: the store is reachable",
        handler=readyz,
        responses={200: HealthOut},
        errors=(503,),
        public=True,
    ),
    Endpoint(
        method="GET",
        path="/metrics",
        name="metrics",
        summary="Prometheus metrics",
        handler=metrics,
        responses={200: None},
        content_type="text/plain",
        public=True,
    ),
    Endpoint(
        method="GET",
        path="/openapi.json",
        name="openapi",
        summary="This document",
        handler=openapi,
        json_document=True,
        responses={200: None},
        public=True,
    ),
    Endpoint(
        method="PUT",
        path=f"/v1/runs/{_ID}",
        name="save_run",
        summary="Checkpoint a durable run (its transcript)",
        handler=save_run,
        body=RunRecord,
        responses={200: RunRecord},
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        method="GET",
        path=f"/v1/runs/{_ID}",
        name="get_run",
        summary="A durable run's last checkpoint",
        handler=get_run,
        responses={200: RunRecord},
        errors=(401, 403, 404),
    ),
    Endpoint(
        method="GET",
        path="/v1/runs",
        name="list_runs",
        summary="Durable runs, most recently updated first",
        handler=list_runs,
        query=(
            Query("status", {"type": "string", "enum": ["running", "finished"]}, "Only these."),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "At most this many."),
        ),
        responses={200: RunsOut},
        errors=(401, 422),
    ),
    *DEVICE_ENDPOINTS,
    *HISTORY_ENDPOINTS,
    *REPLAY_ENDPOINTS,
)
