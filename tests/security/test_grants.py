"""Standing grants under attack (docs/security.md, "Standing grants"): a grant is never
wider than the approval that made it, and a revocation holds at once on every replica."""

from __future__ import annotations

import asyncio

import pytest

from signoff.errors import Forbidden, InvalidArguments
from signoff.grants import MAX_TTL_S, Grant
from signoff.models import ApprovalRequest, Principal, Status
from signoff.service import ApprovalService
from signoff.stores.postgres import PostgresStore
from tests.conftest import (
    ADMIN,
    AGENT,
    EDITOR,
    OTHER_AGENT,
    PUBLISHER,
    REFUND_SCHEMA,
    ManualClock,
    refund_spec,
)


async def pending(service: ApprovalService, **spec: object) -> ApprovalRequest:
    return (await service.submit(refund_spec(**spec), AGENT)).request


async def granted(service: ApprovalService, scope: str = "identical") -> Grant:
    req = await pending(service)
    decided = await service.decide(
        req.id, PUBLISHER, "approve", grant={"ttl": "1h", "scope": scope}
    )
    grant_id = decided.decisions[-1].grant_id
    assert grant_id is not None
    return await service.grants.get(grant_id, ADMIN)


async def test_a_role_below_the_floor_cannot_grant(service: ApprovalService) -> None:
    req = await pending(service)
    with pytest.raises(Forbidden):
        await service.decide(req.id, EDITOR, "approve", grant={"ttl": "1h", "scope": "tool"})
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert await service.grants.list(ADMIN) == []
    types = [e.type for e in await service.audit_events(ADMIN, request_id=req.id)]
    assert types == ["request.created", "decision.refused"]


async def test_a_rejection_or_an_edit_never_grants(service: ApprovalService) -> None:
    req = await pending(service)
    with pytest.raises(InvalidArguments, match="without edits"):
        await service.decide(req.id, PUBLISHER, "reject", reason="no", grant={"ttl": "1h"})
    with pytest.raises(InvalidArguments, match="without edits"):
        await service.decide(
            req.id, PUBLISHER, "approve", modified_args={"amount": 10}, grant={"ttl": "1h"}
        )
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert await service.grants.list(ADMIN) == []


async def test_a_response_never_grants(service: ApprovalService) -> None:
    """Answering in the tool's place is not a permission to run the tool later."""
    req = await pending(service)
    with pytest.raises(InvalidArguments, match="without edits"):
        await service.decide(
            req.id, PUBLISHER, "respond", response={"refunded": False}, grant={"ttl": "1h"}
        )
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert await service.grants.list(ADMIN) == []


async def test_an_expiry_never_grants(service: ApprovalService, clock: ManualClock) -> None:
    req = await pending(service)
    clock.advance(301)
    with pytest.raises(Exception, match="expired"):
        await service.decide(req.id, PUBLISHER, "approve", grant={"ttl": "1h"})
    assert (await service.get(req.id, ADMIN)).status is Status.EXPIRED
    assert await service.grants.list(ADMIN) == []


async def test_another_agents_call_is_not_covered(service: ApprovalService) -> None:
    await granted(service, scope="tool")
    other = await service.submit(refund_spec(), OTHER_AGENT)
    assert other.request.status is Status.PENDING


async def test_a_changed_schema_voids_the_grant(service: ApprovalService) -> None:
    await granted(service, scope="tool")
    wider = {
        **REFUND_SCHEMA,
        "properties": {
            "order_id": {"type": "string"},
            "amount": {"type": "number", "exclusiveMinimum": 0},
            "note": {"type": "string"},
        },
    }
    changed = await service.submit(refund_spec(args_schema=wider), AGENT)
    assert changed.request.status is Status.PENDING
    same = await service.submit(refund_spec(), AGENT)
    assert same.request.status is Status.APPROVED


async def test_identical_scope_with_other_arguments_asks(service: ApprovalService) -> None:
    await granted(service)
    other = await service.submit(refund_spec(args={"order_id": "ORD-1", "amount": 251}), AGENT)
    assert other.request.status is Status.PENDING


async def test_expired_grant_asks(service: ApprovalService, clock: ManualClock) -> None:
    await granted(service)
    clock.advance(3600)
    assert (await service.submit(refund_spec(), AGENT)).request.status is Status.PENDING


async def test_a_raised_floor_or_a_quorum_is_not_covered(service: ApprovalService) -> None:
    await granted(service, scope="tool")
    admin_only = refund_spec(policy={"min_role": "admin", "timeout_s": 300})
    assert (await service.submit(admin_only, AGENT)).request.status is Status.PENDING
    two = refund_spec(policy={"min_role": "publisher", "quorum": 2, "timeout_s": 300})
    assert (await service.submit(two, AGENT)).request.status is Status.PENDING


@pytest.mark.parametrize("ttl", ["0s", "59s", "8d", "1000000h", 10**9, -1, True, "1 week", ""])
async def test_absurd_ttls_are_refused(service: ApprovalService, ttl: object) -> None:
    req = await pending(service)
    with pytest.raises(InvalidArguments, match="ttl"):
        await service.decide(req.id, PUBLISHER, "approve", grant={"ttl": ttl})
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert MAX_TTL_S == 7 * 86400


async def test_an_agent_cannot_revoke_or_list(service: ApprovalService) -> None:
    grant = await granted(service)
    with pytest.raises(Forbidden):
        await service.grants.revoke(grant.id, AGENT)
    with pytest.raises(Forbidden):
        await service.grants.list(AGENT)
    stranger = Principal(sub="mallory", role="superuser")
    with pytest.raises(Forbidden):
        await service.grants.list(stranger)


async def test_revoked_on_replica_a_is_refused_on_replica_b(postgres_url: str) -> None:
    """Two services (two replicas) on one PostgreSQL database: B reads the grant live, A
    revokes it, and B's very next submission asks a human."""
    a = ApprovalService(PostgresStore.from_url(postgres_url, min_size=1), sweep=False)
    b = ApprovalService(PostgresStore.from_url(postgres_url, min_size=1), sweep=False)
    async with a, b:
        grant = await granted(a, scope="tool")
        before = await b.submit(refund_spec(tool_call_id="t1"), AGENT)
        assert before.request.status is Status.APPROVED
        await a.grants.revoke(grant.id, PUBLISHER)
        after = await b.submit(refund_spec(tool_call_id="t2"), AGENT)
        assert after.request.status is Status.PENDING
        # a revocation racing submissions: each submission is before it or after it (the
        # grant's row is taken FOR SHARE in the approving transaction), and none after it
        grant = await granted(a, scope="tool")
        subs = [b.submit(refund_spec(tool_call_id=f"r{n}"), AGENT) for n in range(10)]
        await asyncio.gather(a.grants.revoke(grant.id, ADMIN), *subs)
        assert (await b.grants.get(grant.id, ADMIN)).revoked_at is not None
        late = await b.submit(refund_spec(tool_call_id="late"), AGENT)
        assert late.request.status is Status.PENDING
