"""The store contract for standing grants, on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from signoff.grants import Grant, schema_fingerprint
from signoff.models import ApprovalRequest, Status
from signoff.stores.base import Change, Store
from signoff.stores.grant_store import GrantQuery
from tests.stores.test_contract import NOW, approved, create, created_entry, entry, make_request


def make_grant(req: ApprovalRequest, n: int = 1, ttl_s: int = 3600) -> Grant:
    return Grant(
        id=f"grt_{n:04d}",
        tool=req.tool,
        agent=req.requested_by,
        scope="identical",
        args_digest=req.args_digest,
        schema_fingerprint=schema_fingerprint(req.args_schema),
        granted_by="paul",
        role="publisher",
        request_id=req.id,
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=ttl_s),
    )


async def granting(store: Store, n: int, ttl_s: int = 3600) -> Grant:
    """Approve request ``n`` with a grant, as the decide transition does."""
    req = await create(store, make_request(n))
    grant = make_grant(req, n, ttl_s)

    def apply(current: ApprovalRequest) -> Change:
        change = approved(current)
        change.grant = grant
        change.audit.append(entry("grant.created", current.id, grant_id=grant.id))
        return change

    await store.transition(req.id, apply)
    return grant


async def test_a_grant_is_written_with_the_approval(store: Store) -> None:
    grant = await granting(store, 1)
    assert await store.get_grant(grant.id) == grant
    assert await store.get_grant("grt_missing") is None
    events = await store.audit_events(request_id=grant.request_id)
    assert [e.type for e in events][-2:] == ["request.approved", "grant.created"]


async def test_a_refused_change_writes_no_grant(store: Store) -> None:
    req = await create(store, make_request(1))
    grant = make_grant(req)

    def refuse(current: ApprovalRequest) -> Change:
        # no new state: a refusal only audits, and never carries a grant
        return Change(audit=[entry("decision.refused", current.id)])

    await store.transition(req.id, refuse)
    assert await store.get_grant(grant.id) is None


async def test_list_filters_newest_first(store: Store) -> None:
    one = await granting(store, 1)
    two = await granting(store, 2, ttl_s=60)
    everything = await store.list_grants(GrantQuery(now=NOW))
    assert [g.id for g in everything] == [two.id, one.id]
    later = NOW + timedelta(seconds=61)
    live = await store.list_grants(GrantQuery(active=True, now=later))
    assert [g.id for g in live] == [one.id]
    ended = await store.list_grants(GrantQuery(active=False, now=later))
    assert [g.id for g in ended] == [two.id]
    assert await store.list_grants(GrantQuery(agent="nobody", now=NOW)) == []
    assert [g.id for g in await store.list_grants(GrantQuery(tool="issue_refund", now=NOW))] == [
        two.id,
        one.id,
    ]
    assert len(await store.list_grants(GrantQuery(now=NOW, limit=1))) == 1


async def test_revoke_once_with_its_audit_event(store: Store) -> None:
    grant = await granting(store, 1)
    revocation = entry("grant.revoked", grant.request_id, grant_id=grant.id)
    at = NOW + timedelta(seconds=5)
    assert await store.revoke_grant(grant.id, "ada", at, revocation)
    assert not await store.revoke_grant(grant.id, "ada", at, revocation)
    assert not await store.revoke_grant("grt_missing", "ada", at, revocation)
    stored = await store.get_grant(grant.id)
    assert stored is not None and stored.revoked_at == at and stored.revoked_by == "ada"
    assert not stored.live(at)
    types = [e.type for e in await store.audit_events(request_id=grant.request_id)]
    assert types.count("grant.revoked") == 1


async def test_create_granted_only_while_the_grant_is_live(store: Store) -> None:
    grant = await granting(store, 1, ttl_s=60)
    fresh = make_request(2)
    approved_req = fresh.model_copy(update={"status": Status.APPROVED, "decided_at": NOW})
    audit = [
        created_entry(fresh),
        entry("request.approved", fresh.id, args_digest=fresh.args_digest, grant_id=grant.id),
    ]
    late = NOW + timedelta(seconds=60)
    assert await store.create_granted(approved_req, audit, grant.id, late) is None
    assert await store.get(fresh.id) is None
    assert await store.create_granted(approved_req, audit, "grt_missing", NOW) is None
    created = await store.create_granted(approved_req, audit, grant.id, NOW)
    assert created is not None and created.created
    assert [e.type for e in created.events] == ["request.created", "request.decided"]
    assert (await store.get(fresh.id)) == approved_req
    revocation = entry("grant.revoked", grant.request_id, grant_id=grant.id)
    await store.revoke_grant(grant.id, "ada", NOW, revocation)
    third = make_request(3)
    third_ok = third.model_copy(update={"status": Status.APPROVED, "decided_at": NOW})
    assert await store.create_granted(third_ok, [created_entry(third)], grant.id, NOW) is None


async def test_a_submission_is_written_pending_only_while_no_live_grant_names_it(
    store: Store,
) -> None:
    grant = await granting(store, 1, ttl_s=60)
    named = make_request(2)  # the grant's agent and tool: whether it covers is asked after
    assert await store.create_ungranted(named, created_entry(named)) is None
    assert await store.get(named.id) is None
    for other in (make_request(3, tool="close_account"), make_request(4, agent="billing")):
        written = await store.create_ungranted(other, created_entry(other))
        assert written is not None and written.created
    expired = make_request(5).model_copy(update={"created_at": NOW + timedelta(seconds=60)})
    written = await store.create_ungranted(expired, created_entry(expired))
    assert written is not None and written.created
    revocation = entry("grant.revoked", grant.request_id, grant_id=grant.id)
    await store.revoke_grant(grant.id, "ada", NOW, revocation)
    after = make_request(6)
    written = await store.create_ungranted(after, created_entry(after))
    assert written is not None and written.created and written.request.status is Status.PENDING
