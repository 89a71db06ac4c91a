"""The remote gate against a real server in the test's event loop: how it learns of
decisions through its one event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from signoff import CallStatus, Gate, Policy, Run
from signoff.models import ApprovalRequest
from signoff.remote import RemoteApprovals
from tests.server.conftest import Live

RUN = Run(agent_id="support-bot", run_id="remote")


@pytest.fixture
async def gate(live: Live) -> AsyncIterator[Gate]:
    gate = Gate(
        live.url,
        token=live.agent_token("support-bot"),
        approver_token=live.approver_token("paul", "publisher"),
    )

    @gate.tool(policy=Policy(min_role="publisher", reason="Send the newsletter"))
    async def send_newsletter(issue: int) -> str:
        return f"sent {issue}"

    async with gate:
        yield gate


async def approve_when_pending(gate: Gate) -> None:
    while not (pending := await gate.pending()):
        await asyncio.sleep(0.02)
    await gate.approve(pending[0].id)


async def test_a_decision_made_before_the_call_starts_waiting_wakes_it_at_once(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a first call opens the gate's event stream
    approving = asyncio.create_task(approve_when_pending(gate))
    first = await asyncio.wait_for(
        gate.call("send_newsletter", {"issue": 1}, tool_call_id="c1", run=RUN), 10
    )
    await approving
    assert first.status is CallStatus.EXECUTED

    approvals = gate.approvals
    assert isinstance(approvals, RemoteApprovals)
    wait = approvals.wait

    async def decided_before_waiting(request_id: str, run: Run) -> ApprovalRequest:
        await gate.approve(request_id)  # an approver (or a bot) quicker than the agent
        await asyncio.sleep(0.5)  # the decision passes through the stream meanwhile
        return await wait(request_id, run)

    monkeypatch.setattr(approvals, "wait", decided_before_waiting)
    # the stream's decision is used: no waiting until the 30 s safety re-read
    second = await asyncio.wait_for(
        gate.call("send_newsletter", {"issue": 2}, tool_call_id="c2", run=RUN), 5
    )
    assert second.status is CallStatus.EXECUTED
    assert second.to_model() == "sent 2"


async def test_a_remote_gate_responds_and_its_call_gets_the_response(gate: Gate) -> None:
    async def respond_when_pending() -> None:
        while not (pending := await gate.pending()):
            await asyncio.sleep(0.02)
        await gate.respond(pending[0], {"sent": False, "why": "issue 3 went out yesterday"})

    responding = asyncio.create_task(respond_when_pending())
    outcome = await asyncio.wait_for(
        gate.call("send_newsletter", {"issue": 3}, tool_call_id="c3", run=RUN), 10
    )
    await responding
    assert outcome.status is CallStatus.RESPONDED and not outcome.is_error
    assert outcome.to_model_json() == {"sent": False, "why": "issue 3 went out yesterday"}


async def test_a_remote_gates_approved_call_carries_a_verifiable_receipt(
    gate: Gate, live: Live
) -> None:
    from signoff.receipts import current_receipt, verify

    seen: list[str | None] = []

    @gate.tool(policy=Policy(min_role="publisher"))
    async def archive(issue: int) -> str:
        seen.append(current_receipt())
        return "archived"

    approving = asyncio.create_task(approve_when_pending(gate))
    outcome = await asyncio.wait_for(
        gate.call("archive", {"issue": 4}, tool_call_id="c4", run=RUN), 10
    )
    await approving
    assert outcome.status is CallStatus.EXECUTED and seen[0] is not None
    jwks = live.service.audit_log.keys.public_jwks()
    assert verify(seen[0], jwks, tool="archive", args={"issue": 4}).rid == outcome.request.id  # type: ignore[union-attr]
