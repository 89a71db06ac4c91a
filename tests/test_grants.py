"""Standing grants through the service, on every store (CONTRACT.md §9)."""

from __future__ import annotations

import pytest

from signoff.audit import AuditEvent
from signoff.errors import Conflict, Forbidden, InvalidArguments, NotFound
from signoff.grants import Grant, GrantAsk, parse_cli
from signoff.models import ApprovalRequest, Status
from signoff.service import ApprovalService
from tests.conftest import ADMIN, AGENT, EDITOR, PUBLISHER, PUBLISHER_2, ManualClock, refund_spec


async def approve_granting(
    service: ApprovalService, scope: str = "identical", ttl: str = "1h", **spec: object
) -> tuple[ApprovalRequest, Grant]:
    pending = (await service.submit(refund_spec(**spec), AGENT)).request
    decided = await service.decide(
        pending.id, PUBLISHER, "approve", grant={"ttl": ttl, "scope": scope}
    )
    grant_id = decided.decisions[-1].grant_id
    assert grant_id is not None
    return decided, await service.grants.get(grant_id, ADMIN)


async def events_of(service: ApprovalService, request_id: str) -> list[AuditEvent]:
    return await service.audit_events(ADMIN, request_id=request_id)


async def test_an_approval_grants_and_an_identical_call_is_approved_at_once(
    service: ApprovalService,
) -> None:
    decided, grant = await approve_granting(service)
    assert decided.status is Status.APPROVED
    assert grant.tool == "issue_refund" and grant.agent == AGENT.sub
    assert grant.scope == "identical" and grant.args_digest == decided.args_digest
    assert grant.granted_by == PUBLISHER.sub and grant.request_id == decided.id
    assert (grant.expires_at - grant.created_at).total_seconds() == 3600
    assert [e.type for e in await events_of(service, decided.id)][-2:] == [
        "request.approved",
        "grant.created",
    ]

    again = await service.submit(refund_spec(), AGENT)
    req = again.request
    assert again.created and req.status is Status.APPROVED
    (decision,) = req.decisions
    assert decision.via == "grant" and decision.grant_id == grant.id
    assert decision.by == PUBLISHER.sub
    events = await events_of(service, req.id)
    assert [e.type for e in events] == ["request.created", "request.approved"]
    assert '"grant_id":"' + grant.id in events[1].record
    # the agent runs it as it runs any approval: once
    consumed = await service.consume(req.id, AGENT)
    assert consumed.consumed_at is not None
    verification = await service.verify_audit(ADMIN)
    assert verification.ok, verification


async def test_identical_scope_asks_for_other_arguments(service: ApprovalService) -> None:
    await approve_granting(service)
    other = await service.submit(refund_spec(args={"order_id": "ORD-2", "amount": 9}), AGENT)
    assert other.request.status is Status.PENDING


async def test_tool_scope_covers_any_arguments(service: ApprovalService) -> None:
    _, grant = await approve_granting(service, scope="tool")
    assert grant.args_digest is None
    other = await service.submit(refund_spec(args={"order_id": "ORD-2", "amount": 9}), AGENT)
    assert other.request.status is Status.APPROVED
    assert other.request.decisions[0].grant_id == grant.id
    another_tool = await service.submit(refund_spec(tool="delete_user"), AGENT)
    assert another_tool.request.status is Status.PENDING


async def test_expired_grant_asks(service: ApprovalService, clock: ManualClock) -> None:
    _, grant = await approve_granting(service, ttl="2m")
    clock.advance(121)
    assert (await service.submit(refund_spec(), AGENT)).request.status is Status.PENDING
    assert not grant.live(service.now())
    assert await service.grants.list(ADMIN, active=True) == []
    assert [g.id for g in await service.grants.list(ADMIN, active=False)] == [grant.id]


async def test_revoked_grant_asks_and_revocation_is_audited(service: ApprovalService) -> None:
    _, grant = await approve_granting(service)
    revoked = await service.grants.revoke(grant.id, PUBLISHER)
    assert revoked.revoked_by == PUBLISHER.sub and revoked.revoked_at is not None
    assert (await service.submit(refund_spec(), AGENT)).request.status is Status.PENDING
    assert "grant.revoked" in [e.type for e in await events_of(service, grant.request_id)]
    with pytest.raises(Conflict, match="already revoked"):
        await service.grants.revoke(grant.id, ADMIN)


async def test_only_the_granter_or_the_highest_role_revokes(service: ApprovalService) -> None:
    _, grant = await approve_granting(service)
    with pytest.raises(Forbidden):
        await service.grants.revoke(grant.id, PUBLISHER_2)
    with pytest.raises(Forbidden):
        await service.grants.revoke(grant.id, AGENT)
    assert (await service.grants.revoke(grant.id, ADMIN)).revoked_by == ADMIN.sub
    with pytest.raises(NotFound):
        await service.grants.revoke("grt_nothing", ADMIN)


async def test_listing_filters_and_is_for_approvers(service: ApprovalService) -> None:
    _, first = await approve_granting(service)
    _, second = await approve_granting(service, tool="send_email", scope="tool")
    assert [g.id for g in await service.grants.list(EDITOR)] == [second.id, first.id]
    assert [g.id for g in await service.grants.list(ADMIN, tool="send_email")] == [second.id]
    assert [g.id for g in await service.grants.list(ADMIN, agent=AGENT.sub)] == [
        second.id,
        first.id,
    ]
    assert await service.grants.list(ADMIN, agent="nobody") == []
    with pytest.raises(Forbidden):
        await service.grants.list(AGENT)
    with pytest.raises(InvalidArguments):
        await service.grants.list(ADMIN, limit=0)


async def test_a_pending_quorum_approval_does_not_grant(service: ApprovalService) -> None:
    pending = (
        await service.submit(
            refund_spec(policy={"min_role": "publisher", "quorum": 2, "timeout_s": 300}), AGENT
        )
    ).request
    with pytest.raises(Forbidden, match="2 approvers"):
        await service.decide(pending.id, PUBLISHER, "approve", grant={"ttl": "1h"})
    assert (await service.get(pending.id, ADMIN)).decisions == []
    assert await service.grants.list(ADMIN) == []


def test_cli_form_of_a_grant() -> None:
    assert parse_cli("1h") == GrantAsk(ttl_s=3600, scope="identical")
    assert parse_cli("30m:tool") == GrantAsk(ttl_s=1800, scope="tool")
    with pytest.raises(InvalidArguments):
        parse_cli("1h:everything")
