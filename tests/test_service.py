"""ApprovalService rules, on every store."""

from __future__ import annotations

import asyncio

import pytest

from signoff.config import parse_config
from signoff.errors import (
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidEdit,
    NotFound,
)
from signoff.models import DecisionKind, Principal, Status
from signoff.service import ApprovalService
from signoff.stores.base import ListQuery, Store
from tests.conftest import (
    ADMIN,
    AGENT,
    EDITOR,
    OTHER_AGENT,
    PUBLISHER,
    PUBLISHER_2,
    ManualClock,
    ServiceFactory,
    refund_spec,
)


async def audit_types(service: ApprovalService) -> list[str]:
    return [e.type for e in await service.audit_events(ADMIN)]


# -- submit ------------------------------------------------------------------------------


async def test_submit_fills_the_request(service: ApprovalService, clock: ManualClock) -> None:
    created = await service.submit(refund_spec(tool_call_id="toolu_1"), AGENT)
    req = created.request
    assert created.created
    assert req.id.startswith("apr_") and len(req.id) == 26
    assert req.status is Status.PENDING
    assert req.args == req.final_args == {"order_id": "ORD-1", "amount": 250}
    assert req.requested_by == "support-bot"
    assert req.policy.min_role == "publisher"
    assert (req.expires_at - req.created_at).total_seconds() == 300
    assert req.decisions == [] and req.outcome is None and req.decided_at is None


async def test_ids_are_unique(service: ApprovalService) -> None:
    ids = {(await service.submit(refund_spec(), AGENT)).request.id for _ in range(50)}
    assert len(ids) == 50


async def test_submit_is_idempotent_per_run_and_tool_call(service: ApprovalService) -> None:
    first = await service.submit(refund_spec(tool_call_id="toolu_1"), AGENT)
    again = await service.submit(refund_spec(tool_call_id="toolu_1"), AGENT)
    assert not again.created
    assert again.request.id == first.request.id
    other_call = await service.submit(refund_spec(tool_call_id="toolu_2"), AGENT)
    assert other_call.created
    # the key is scoped to the agent: another agent never gets this agent's request
    other_agent = await service.submit(refund_spec(tool_call_id="toolu_1"), OTHER_AGENT)
    assert other_agent.created and other_agent.request.id != first.request.id


async def test_idempotency_key_reused_for_another_call_is_a_conflict(
    service: ApprovalService,
) -> None:
    await service.submit(refund_spec(idempotency_key="k1"), AGENT)
    with pytest.raises(Conflict, match="different call"):
        await service.submit(
            refund_spec(idempotency_key="k1", args={"order_id": "X", "amount": 1}), AGENT
        )


async def test_only_agents_submit(service: ApprovalService) -> None:
    with pytest.raises(Forbidden):
        await service.submit(refund_spec(), ADMIN)


async def test_submit_rejects_unknown_role_and_bad_schema(service: ApprovalService) -> None:
    with pytest.raises(InvalidArguments, match="unknown min_role"):
        await service.submit(refund_spec(policy={"min_role": "root"}), AGENT)
    with pytest.raises(InvalidArguments, match="args_schema"):
        await service.submit(refund_spec(args_schema={"type": "no-such-type"}), AGENT)


# -- the server's policy is a floor (invariant 6) ----------------------------------------


async def test_server_policy_is_a_floor_the_agent_cannot_lower(
    make_service: ServiceFactory,
) -> None:
    config = parse_config(
        {
            "tools": [
                {
                    "name": "issue_refund",
                    "min_role": "admin",
                    "quorum": 2,
                    "timeout": "1m",
                    "risk": "high",
                    "editable": ["amount"],
                    "allow_self_approval": False,
                }
            ]
        }
    )
    service = make_service(config)
    await service.start()
    weak = refund_spec(
        risk="low",
        policy={
            "min_role": "editor",
            "quorum": 1,
            "timeout_s": 3600,
            "editable": ["amount", "order_id"],
            "allow_self_approval": True,
        },
    )
    req = (await service.submit(weak, AGENT)).request
    assert req.policy.min_role == "admin"
    assert req.policy.quorum == 2
    assert req.policy.timeout_s == 60
    assert req.policy.editable == ["amount"]
    assert req.policy.allow_self_approval is False
    assert req.risk == "high"
    # but an agent may ask for more than the floor
    strong = refund_spec(policy={"min_role": "admin", "quorum": 3, "timeout_s": 10})
    req2 = (await service.submit(strong, AGENT)).request
    assert (req2.policy.quorum, req2.policy.timeout_s) == (3, 10)
    with pytest.raises(Forbidden):
        await service.decide(req.id, PUBLISHER, "approve")


async def test_default_min_role_from_config(make_service: ServiceFactory) -> None:
    service = make_service(parse_config({"defaults": {"min_role": "publisher"}}))
    await service.start()
    req = (await service.submit(refund_spec(tool="other", policy=None), AGENT)).request
    assert req.policy.min_role == "publisher"


# -- deciding ----------------------------------------------------------------------------


async def test_approve(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    done = await service.decide(req.id, PUBLISHER, "approve", reason="ok", via="cli")
    assert done.status is Status.APPROVED
    assert done.decided_at is not None
    [d] = done.decisions
    assert (d.decision, d.by, d.role, d.reason, d.via) == (
        "approve",
        "paul",
        "publisher",
        "ok",
        "cli",
    )
    assert d.args_digest == done.args_digest


async def test_role_ladder(service: ApprovalService) -> None:
    """min_role admits that role and every higher one; lower and unknown roles are refused."""
    req = (await service.submit(refund_spec(), AGENT)).request
    for who in (EDITOR, Principal(sub="x", role="superuser"), Principal(sub="y", role=None)):
        with pytest.raises(Forbidden):
            await service.decide(req.id, who, "approve")
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert (await service.decide(req.id, ADMIN, "approve")).status is Status.APPROVED


async def test_too_low_role_is_403_audited_and_leaves_it_pending(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(Forbidden, match="needs 'publisher'"):
        await service.decide(req.id, EDITOR, "approve")
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert await audit_types(service) == ["request.created", "decision.refused"]
    assert (await service.decide(req.id, PUBLISHER, "approve")).status is Status.APPROVED


async def test_agents_may_not_decide(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    for agent in (AGENT, OTHER_AGENT, Principal(sub="bot", role="admin", kind="agent")):
        with pytest.raises(Forbidden, match="agents may not decide"):
            await service.decide(req.id, agent, "approve")
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING


async def test_self_approval_is_refused(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    same_person = Principal(sub=AGENT.sub, role="admin")
    with pytest.raises(Forbidden, match="requested this call"):
        await service.decide(req.id, same_person, "approve")
    with pytest.raises(Forbidden, match="requested this call"):
        await service.decide(req.id, same_person, "reject", reason="no")
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING


async def test_self_approval_needs_the_operator(make_service: ServiceFactory) -> None:
    spec = refund_spec(policy={"min_role": "publisher", "allow_self_approval": True})
    same_person = Principal(sub=AGENT.sub, role="admin")
    # the agent's word alone, with the config silent: refused
    silent = make_service(parse_config({"tools": [{"name": "issue_refund"}]}))
    await silent.start()
    req = (await silent.submit(spec, AGENT)).request
    assert req.policy.allow_self_approval is False
    with pytest.raises(Forbidden, match="requested this call"):
        await silent.decide(req.id, same_person, "approve")
    # where the config allows it
    config = parse_config({"tools": [{"name": "issue_refund", "allow_self_approval": True}]})
    allowing = make_service(config)
    await allowing.start()
    spec = refund_spec(tool_call_id="t2", policy={"min_role": "publisher"})
    req = (await allowing.submit(spec, AGENT)).request
    assert (await allowing.decide(req.id, same_person, "approve")).status is Status.APPROVED


async def test_reject_needs_a_reason_and_takes_no_edits(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(InvalidArguments, match="needs a reason"):
        await service.decide(req.id, ADMIN, "reject")
    with pytest.raises(InvalidArguments, match="needs a reason"):
        await service.decide(req.id, ADMIN, "reject", reason="   ")
    with pytest.raises(InvalidEdit):
        await service.decide(req.id, ADMIN, "reject", reason="x", modified_args={"amount": 1})
    with pytest.raises(InvalidArguments):
        await service.decide(req.id, ADMIN, "maybe")
    done = await service.decide(req.id, ADMIN, DecisionKind.REJECT, reason="over the limit")
    assert done.status is Status.REJECTED
    assert done.decisions[0].reason == "over the limit"


async def test_decided_request_refuses_further_decisions(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(req.id, PUBLISHER, "approve")
    with pytest.raises(Conflict, match="no longer pending"):
        await service.decide(req.id, ADMIN, "reject", reason="late")
    with pytest.raises(Conflict):
        await service.decide(req.id, PUBLISHER_2, "approve")
    assert (await service.get(req.id, ADMIN)).status is Status.APPROVED
    assert (await audit_types(service)).count("decision.refused") == 2


async def test_unknown_request(service: ApprovalService) -> None:
    with pytest.raises(NotFound):
        await service.decide("apr_nope", ADMIN, "approve")
    with pytest.raises(NotFound):
        await service.get("apr_nope", ADMIN)


# -- quorum ------------------------------------------------------------------------------


async def test_quorum_two_of_three(service: ApprovalService) -> None:
    spec = refund_spec(policy={"min_role": "publisher", "quorum": 2})
    req = (await service.submit(spec, AGENT)).request
    after_one = await service.decide(req.id, PUBLISHER, "approve")
    assert after_one.status is Status.PENDING
    assert len(after_one.approvals) == 1
    # the same approver twice does not make two
    with pytest.raises(Conflict, match="already approved"):
        await service.decide(req.id, PUBLISHER, "approve")
    # a too-low role does not count
    with pytest.raises(Forbidden):
        await service.decide(req.id, EDITOR, "approve")
    after_two = await service.decide(req.id, PUBLISHER_2, "approve")
    assert after_two.status is Status.APPROVED
    assert {d.by for d in after_two.approvals} == {"paul", "petra"}
    types = await audit_types(service)
    assert types.count("decision.recorded") == 1 and types.count("request.approved") == 1


async def test_one_qualified_rejection_rejects_a_quorum_request(service: ApprovalService) -> None:
    spec = refund_spec(policy={"min_role": "publisher", "quorum": 2})
    req = (await service.submit(spec, AGENT)).request
    await service.decide(req.id, PUBLISHER, "approve")
    done = await service.decide(req.id, PUBLISHER_2, "reject", reason="no")
    assert done.status is Status.REJECTED


async def test_an_edit_resets_earlier_approvals(service: ApprovalService) -> None:
    """An approval is for specific arguments: after an edit, earlier approvals of other
    arguments no longer count toward the quorum."""
    spec = refund_spec(policy={"min_role": "publisher", "quorum": 2, "editable": ["amount"]})
    req = (await service.submit(spec, AGENT)).request
    await service.decide(req.id, PUBLISHER, "approve")
    edited = await service.decide(req.id, PUBLISHER_2, "approve", modified_args={"amount": 100})
    assert edited.status is Status.PENDING
    assert [d.by for d in edited.approvals] == ["petra"]
    done = await service.decide(req.id, PUBLISHER, "approve")
    assert done.status is Status.APPROVED
    assert done.final_args["amount"] == 100


# -- edits -------------------------------------------------------------------------------


async def test_approve_with_edits(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    done = await service.decide(req.id, PUBLISHER, "approve", modified_args={"amount": 100})
    assert done.args == {"order_id": "ORD-1", "amount": 250}
    assert done.final_args == {"order_id": "ORD-1", "amount": 100}
    assert done.decisions[0].modified_args == {"amount": 100}
    assert done.modified_fields == {"amount": (250, 100)}
    assert done.args_digest != req.args_digest


async def test_edit_outside_editable_is_refused(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(InvalidEdit, match="not editable"):
        await service.decide(req.id, PUBLISHER, "approve", modified_args={"order_id": "X"})
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    assert (await audit_types(service))[-1] == "decision.refused"


async def test_edit_breaking_the_schema_is_refused(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    for bad in ({"amount": "lots"}, {"amount": -5}, {"amount": None}):
        with pytest.raises(InvalidEdit, match="schema"):
            await service.decide(req.id, PUBLISHER, "approve", modified_args=bad)
    assert (await service.get(req.id, ADMIN)).final_args == req.args


async def test_nothing_editable_by_default(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(policy={"min_role": "editor"}), AGENT)).request
    with pytest.raises(InvalidEdit, match="allows editing none"):
        await service.decide(req.id, EDITOR, "approve", modified_args={"amount": 1})


# -- expiry ------------------------------------------------------------------------------


async def test_a_decision_after_expiry_is_refused(
    service: ApprovalService, clock: ManualClock
) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    clock.advance(300)
    with pytest.raises(Conflict, match="expired"):
        await service.decide(req.id, PUBLISHER, "approve")
    current = await service.get(req.id, ADMIN)
    assert current.status is Status.EXPIRED
    assert await audit_types(service) == ["request.created", "request.expired", "decision.refused"]


async def test_reading_an_overdue_request_expires_it(
    service: ApprovalService, clock: ManualClock
) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    clock.advance(299.9)
    assert (await service.get(req.id, ADMIN)).status is Status.PENDING
    clock.advance(0.2)
    assert (await service.get(req.id, ADMIN)).status is Status.EXPIRED


async def test_expire_due(service: ApprovalService, clock: ManualClock) -> None:
    short = (await service.submit(refund_spec(policy={"timeout_s": 10}), AGENT)).request
    long = (await service.submit(refund_spec(policy={"timeout_s": 1000}), AGENT)).request
    clock.advance(11)
    assert await service.expire_due() == 1
    assert (await service.get(short.id, ADMIN)).status is Status.EXPIRED
    assert (await service.get(long.id, ADMIN)).status is Status.PENDING
    assert await service.expire_due() == 0


async def test_expire_does_not_touch_a_decided_request(
    service: ApprovalService, clock: ManualClock
) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(req.id, PUBLISHER, "approve")
    clock.advance(1000)
    assert (await service.expire(req.id)).status is Status.APPROVED


async def test_pending_hides_overdue_requests(service: ApprovalService, clock: ManualClock) -> None:
    await service.submit(refund_spec(policy={"timeout_s": 10}), AGENT)
    keep = (await service.submit(refund_spec(), AGENT)).request
    clock.advance(20)
    assert [r.id for r in await service.pending(ADMIN)] == [keep.id]


async def test_sweeper_expires_requests_nobody_waits_on(store: Store) -> None:
    async with ApprovalService(store) as service:
        req = (await service.submit(refund_spec(policy={"timeout_s": 0.2}), AGENT)).request
        with service.bus.listen() as listener:
            # (on PostgreSQL the creation, read back in order, may come first)
            event = await listener.get(timeout=3)
            while event is not None and event.type == "request.created":
                event = await listener.get(timeout=3)
        assert event is not None and event.type == "request.expired"
        assert (await store.get(req.id)).status is Status.EXPIRED  # type: ignore[union-attr]


# -- cancel, consume, outcome ------------------------------------------------------------


async def test_cancel(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(Forbidden):
        await service.cancel(req.id, OTHER_AGENT)
    with pytest.raises(Forbidden):
        await service.cancel(req.id, ADMIN)
    done = await service.cancel(req.id, AGENT, "no longer needed")
    assert done.status is Status.CANCELLED
    with pytest.raises(Conflict):
        await service.cancel(req.id, AGENT)
    with pytest.raises(Conflict):
        await service.decide(req.id, ADMIN, "approve")


async def test_consume_succeeds_once(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(Conflict, match="not approved"):
        await service.consume(req.id, AGENT)
    await service.decide(req.id, PUBLISHER, "approve")
    with pytest.raises(Forbidden):
        await service.consume(req.id, OTHER_AGENT)
    consumed = await service.consume(req.id, AGENT)
    assert consumed.consumed_at is not None
    with pytest.raises(Conflict, match="already used"):
        await service.consume(req.id, AGENT)


async def test_concurrent_consumers_run_once(service: ApprovalService) -> None:
    """Invariant 3 at the service: many claimants of one approval, one winner."""
    req = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(req.id, PUBLISHER, "approve")

    async def claim() -> bool:
        try:
            await service.consume(req.id, AGENT)
        except Conflict:
            return False
        return True

    assert sum(await asyncio.gather(*(claim() for _ in range(100)))) == 1


async def test_outcome(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(Conflict):
        await service.record_outcome(req.id, AGENT, "succeeded")
    await service.decide(req.id, PUBLISHER, "approve")
    await service.consume(req.id, AGENT)
    done = await service.record_outcome(req.id, AGENT, "succeeded", {"refund_id": "rf_1"})
    assert done.outcome is not None
    assert (done.outcome.status, done.outcome.detail) == ("succeeded", {"refund_id": "rf_1"})
    with pytest.raises(Conflict, match="already recorded"):
        await service.record_outcome(req.id, AGENT, "failed")
    with pytest.raises(InvalidArguments):
        await service.record_outcome(req.id, AGENT, "maybe")  # type: ignore[arg-type]


async def test_large_outcome_detail_is_bounded(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(req.id, PUBLISHER, "approve")
    done = await service.record_outcome(req.id, AGENT, "succeeded", "x" * 200_000)
    assert done.outcome is not None and done.outcome.detail["truncated"] is True


# -- who sees what -----------------------------------------------------------------------


async def test_an_agent_sees_only_its_own_requests(service: ApprovalService) -> None:
    mine = (await service.submit(refund_spec(), AGENT)).request
    theirs = (await service.submit(refund_spec(), OTHER_AGENT)).request
    assert (await service.get(mine.id, AGENT)).id == mine.id
    with pytest.raises(Forbidden):
        await service.get(theirs.id, AGENT)
    page = await service.list_requests(ListQuery(), AGENT)
    assert [r.id for r in page.items] == [mine.id]
    assert len((await service.list_requests(ListQuery(), ADMIN)).items) == 2
    assert (await audit_types(service))[-1] == "access.refused"


# -- waiting -----------------------------------------------------------------------------


async def test_wait_returns_when_decided(store: Store) -> None:
    async with ApprovalService(store, sweep=False) as service:
        req = (await service.submit(refund_spec(), AGENT)).request
        waiter = asyncio.create_task(service.wait(req.id, AGENT, timeout=10))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await service.decide(req.id, PUBLISHER, "approve")
        done = await asyncio.wait_for(waiter, 2)
        assert done.status is Status.APPROVED


async def test_wait_times_out_still_pending(store: Store) -> None:
    async with ApprovalService(store, sweep=False) as service:
        req = (await service.submit(refund_spec(), AGENT)).request
        still = await service.wait(req.id, AGENT, timeout=0.05)
        assert still.status is Status.PENDING


async def test_wait_ends_at_expiry_without_a_sweeper(store: Store) -> None:
    async with ApprovalService(store, sweep=False) as service:
        req = (await service.submit(refund_spec(policy={"timeout_s": 0.1}), AGENT)).request
        done = await asyncio.wait_for(service.wait(req.id, AGENT), 3)
        assert done.status is Status.EXPIRED


async def test_only_the_requesting_agent_waits(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(Forbidden):
        await service.wait(req.id, OTHER_AGENT, timeout=0)
    with pytest.raises(Forbidden):
        await service.wait(req.id, ADMIN, timeout=0)


async def test_no_lost_wakeup_between_read_and_wait(store: Store) -> None:
    """The decision lands after the waiter read 'pending' but before it started waiting:
    subscribing before reading means the waiter still wakes at once."""
    async with ApprovalService(store, sweep=False) as service:
        req = (await service.submit(refund_spec(), AGENT)).request
        original_get = store.get
        decided = False

        async def get_then_decide(request_id: str):  # type: ignore[no-untyped-def]
            nonlocal decided
            result = await original_get(request_id)
            if not decided:
                decided = True
                await service.decide(req.id, PUBLISHER, "approve")
            return result

        store.get = get_then_decide  # type: ignore[method-assign]
        # as if this process had not heard of the request lately: the wait reads the store
        service.bus.forget_latest()
        try:
            done = await asyncio.wait_for(service.wait(req.id, AGENT, timeout=30), 2)
        finally:
            store.get = original_get  # type: ignore[method-assign]
        assert done.status is Status.APPROVED


async def test_a_wake_up_that_never_comes_delays_a_wait_by_the_recheck_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process decides, and its notification is lost (it died after its commit):
    the waiting call reads its request again within RECHECK_S, not when it expires."""
    monkeypatch.setattr("signoff.service.RECHECK_S", 0.05)
    # two processes on one store, each with a bus of its own that hears nothing of the other
    async with (
        ApprovalService(store, sweep=False) as waiting,
        ApprovalService(store, sweep=False) as deciding,
    ):
        req = (await waiting.submit(refund_spec(), AGENT)).request
        wait = asyncio.create_task(waiting.wait(req.id, AGENT, timeout=60))
        await asyncio.sleep(0.01)
        await deciding.decide(req.id, PUBLISHER, "approve")
        done = await asyncio.wait_for(wait, 5)
    assert done.status is Status.APPROVED
