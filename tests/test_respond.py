"""Respond: an approver answers a call in the tool's place, where the policy allows it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signoff import CallStatus, Forbidden, Gate, Policy, Principal, Run, Status
from signoff.config import parse_config
from signoff.errors import InvalidEdit
from signoff.evidence import request_state
from signoff.policy import Terms, floor
from signoff.roles import RoleLadder
from signoff.service import ApprovalService
from signoff.testing import Respond, ScriptedApprover
from tests.conftest import ADMIN, AGENT, PUBLISHER, ServiceFactory, refund_spec
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_api import REFUND, create, is_problem

ANSWER = {"status": "refunded", "refund_id": "rf_manual_1", "note": "done by hand in the CRM"}


# -- the service -------------------------------------------------------------------------


async def test_respond_ends_the_request_with_the_answer(service: ApprovalService) -> None:
    request = (await service.submit(refund_spec(), AGENT)).request
    answered = await service.decide(
        request.id, PUBLISHER, "respond", response=ANSWER, reason="already refunded"
    )
    assert answered.status is Status.RESPONDED and answered.response == ANSWER
    assert answered.decided_at is not None and answered.receipt is None
    last = answered.decisions[-1]
    assert (last.decision.value, last.by, last.response) == ("respond", "paul", ANSWER)
    events = await service.audit_events(ADMIN, request_id=request.id)
    assert [e.type for e in events] == ["request.created", "request.responded"]
    assert events[-1].data["response"] == ANSWER
    assert request_state(answered) == "responded"
    # nothing runs after a response: no claim, no outcome
    with pytest.raises(Exception, match="responded, not approved"):
        await service.consume(request.id, AGENT)


async def test_a_response_needs_no_quorum(service: ApprovalService) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "quorum": 2}
    request = (await service.submit(refund_spec(policy=policy), AGENT)).request
    answered = await service.decide(request.id, PUBLISHER, "respond", response="ok")
    assert answered.status is Status.RESPONDED


async def test_the_policy_names_what_approvers_may_do(make_service: ServiceFactory) -> None:
    config = parse_config(
        {
            "tools": [
                {"name": "issue_refund", "decisions": ["approve", "reject"]},
                {"name": "send_email", "decisions": ["respond", "reject"]},
            ]
        }
    )
    service = make_service(config)
    await service.start()
    refund = (await service.submit(refund_spec(), AGENT)).request
    assert refund.policy.decisions == ["approve", "reject"]
    with pytest.raises(Forbidden, match="does not let approvers respond"):
        await service.decide(refund.id, PUBLISHER, "respond", response="x")
    with pytest.raises(InvalidEdit, match="does not let approvers edit"):
        await service.decide(refund.id, PUBLISHER, "approve", modified_args={"amount": 1})
    assert (await service.get(refund.id, PUBLISHER)).status is Status.PENDING
    refused = [e for e in await service.audit_events(ADMIN) if e.type == "decision.refused"]
    assert [e.data["attempted"] for e in refused] == ["respond", "approve"]
    email = (await service.submit(refund_spec(tool="send_email"), AGENT)).request
    with pytest.raises(Forbidden, match="does not let approvers approve"):
        await service.decide(email.id, PUBLISHER, "approve")
    answered = await service.decide(email.id, PUBLISHER, "respond", response="sent")
    assert answered.status is Status.RESPONDED


async def test_an_agent_cannot_widen_what_the_operator_allows(
    make_service: ServiceFactory,
) -> None:
    config = parse_config({"tools": [{"name": "issue_refund", "decisions": ["approve", "reject"]}]})
    service = make_service(config)
    await service.start()
    policy = {"min_role": "publisher", "timeout_s": 300, "decisions": ["respond", "approve"]}
    request = (await service.submit(refund_spec(policy=policy), AGENT)).request
    assert request.policy.decisions == ["approve"]


def test_the_floor_keeps_the_narrower_decisions() -> None:
    roles = RoleLadder(["editor", "publisher", "admin"])
    floored = floor(
        Terms(decisions=("approve", "respond")),
        Terms(decisions=("approve", "reject", "edit")),
        roles=roles,
        default_timeout_s=300,
    )
    assert floored.policy.decisions == ["approve"]
    neither = floor(Terms(), None, roles=roles, default_timeout_s=300)
    assert neither.policy.decisions == ["approve", "edit", "reject", "respond"]


def test_a_policy_checks_its_decisions() -> None:
    assert Policy(decisions=["reject", "approve"]).decisions == ("approve", "reject")
    for bad in (["approve", "ship"], [], "approve"):
        with pytest.raises(Exception, match="decisions"):
            Policy(decisions=bad)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="decisions"):
        parse_config({"tools": [{"name": "t", "decisions": ["maybe"]}]})


# -- the gate ----------------------------------------------------------------------------


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")
    yield g
    await g.aclose()


async def test_the_model_receives_the_response_and_the_tool_does_not_run(gate: Gate) -> None:
    ran: list[dict[str, Any]] = []

    @gate.tool(policy=Policy(min_role="publisher"))
    async def issue_refund(order_id: str, amount: float) -> str:
        ran.append({"order_id": order_id, "amount": amount})
        return "refunded"

    run = Run(agent_id="support", run_id="r1")
    async with ScriptedApprover(gate, lambda r: Respond(ANSWER), by=PUBLISHER):
        outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 9}, run=run)
        direct = await issue_refund(order_id="B", amount=3)
    assert ran == []
    assert outcome.status is CallStatus.RESPONDED and not outcome.is_error and not outcome.ran
    assert json.loads(outcome.to_model()) == ANSWER
    assert outcome.request is not None and outcome.request.status is Status.RESPONDED
    assert direct == ANSWER  # the decorated function returns the response as its result
    # a text response is handed over as the text itself
    async with ScriptedApprover(gate, lambda r: Respond("Order A was refunded."), by=PUBLISHER):
        text = await gate.call("issue_refund", {"order_id": "C", "amount": 1}, run=run)
    assert text.to_model() == "Order A was refunded."


async def test_gate_respond_is_refused_where_the_policy_leaves_it_out(gate: Gate) -> None:
    @gate.tool(policy=Policy(min_role="publisher", decisions=["approve", "reject"]))
    async def wire(amount: float) -> str:
        return "sent"

    outcome = await gate.call("wire", {"amount": 5}, wait=False)
    assert outcome.request is not None
    with pytest.raises(Forbidden, match="respond"):
        await gate.respond(outcome.request, "sent", by=PUBLISHER)
    low = Principal(sub="erin", role="editor")
    with pytest.raises(Forbidden, match="role"):
        await gate.respond(outcome.request, "sent", by=low)


# -- HTTP ----------------------------------------------------------------------------------


async def test_respond_over_http_and_the_agent_sees_it(tmp_path: Path) -> None:
    live, server, task = await start_live(tmp_path)
    try:
        await _respond_over_http(live)
    finally:
        await stop_live(server, task)


async def _respond_over_http(live: Live) -> None:
    request = await create(live)
    async with live.client(live.approver_token()) as c:
        answered = await c.post(
            f"/v1/requests/{request['id']}/decisions",
            json={"decision": "respond", "response": ANSWER, "seen_digest": request["args_digest"]},
        )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["status"] == "responded" and body["response"] == ANSWER
    assert body["decisions"][-1]["decision"] == "respond"
    async with live.client(live.agent_token()) as agent:
        seen = await agent.get(f"/v1/requests/{request['id']}")
        consumed = await agent.post(f"/v1/requests/{request['id']}/consume")
    assert seen.json()["response"] == ANSWER
    is_problem(consumed, 409)
    assert REFUND["tool"] == body["tool"]
