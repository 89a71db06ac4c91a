"""Signed receipts: minted with the approval, verified with only the published keys."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signoff import Gate, Policy, Principal, Run, Status
from signoff.approvals import LocalApprovals
from signoff.config import parse_config
from signoff.errors import ReceiptMismatch
from signoff.keys import Keyring, rotate
from signoff.receipts import TYPE, current_receipt, mint, verify
from signoff.service import ApprovalService
from signoff.testing import Approve, ScriptedApprover
from tests.conftest import AGENT, PUBLISHER, PUBLISHER_2, ManualClock, ServiceFactory, refund_spec
from tests.server.conftest import Live, start_live, stop_live


def claims_of(token: str) -> dict[str, Any]:
    import base64

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_an_approval_carries_a_receipt_that_verifies(
    service: ApprovalService, clock: ManualClock
) -> None:
    request = (await service.submit(refund_spec(), AGENT)).request
    assert request.receipt is None
    approved = await service.decide(request.id, PUBLISHER, "approve")
    assert approved.status is Status.APPROVED and approved.receipt is not None
    jwks = service.audit_log.keys.public_jwks()
    receipt = verify(
        approved.receipt, jwks, tool="issue_refund", args=approved.final_args, now=clock()
    )
    assert receipt.rid == request.id and receipt.tool == "issue_refund"
    assert receipt.digest == approved.args_digest
    assert receipt.by == ("paul",)
    assert receipt.exp - receipt.iat == 3600
    assert receipt.kid == service.audit_log.keys.current.kid
    # the receipt is stored with the approval: every later read gives the same one
    assert (await service.get(request.id, PUBLISHER)).receipt == approved.receipt
    events = await service.audit_events(Principal(sub="ada", role="admin"), request_id=request.id)
    approved_event = next(e for e in events if e.type == "request.approved")
    assert approved_event.data["receipt"] == approved.receipt


async def test_a_receipt_is_bound_to_the_final_arguments(service: ApprovalService) -> None:
    request = (await service.submit(refund_spec(), AGENT)).request
    approved = await service.decide(request.id, PUBLISHER, "approve", modified_args={"amount": 100})
    assert approved.receipt is not None
    keys = service.audit_log.keys
    verify(approved.receipt, keys, args={"order_id": "ORD-1", "amount": 100})
    with pytest.raises(ReceiptMismatch, match="not the ones that were approved"):
        verify(approved.receipt, keys, args=request.args)  # what the model proposed


async def test_no_receipt_without_an_approval(service: ApprovalService) -> None:
    rejected = (await service.submit(refund_spec(), AGENT)).request
    rejected = await service.decide(rejected.id, PUBLISHER, "reject", reason="no")
    assert rejected.receipt is None
    waiting = (
        await service.submit(
            refund_spec(policy={"min_role": "publisher", "timeout_s": 300, "quorum": 2}), AGENT
        )
    ).request
    one = await service.decide(waiting.id, PUBLISHER, "approve")
    assert one.status is Status.PENDING and one.receipt is None
    both = await service.decide(waiting.id, PUBLISHER_2, "approve")
    assert both.receipt is not None
    assert claims_of(both.receipt)["by"] == ["paul", "petra"]


async def test_the_receipts_lifetime_comes_from_the_config(make_service: ServiceFactory) -> None:
    service = make_service(parse_config({"audit": {"receipt_ttl": "5m"}}))
    await service.start()
    request = (await service.submit(refund_spec(), AGENT)).request
    approved = await service.decide(request.id, PUBLISHER, "approve")
    assert approved.receipt is not None
    claims = claims_of(approved.receipt)
    assert claims["exp"] - claims["iat"] == 300
    assert set(claims) == {"rid", "tool", "digest", "by", "iat", "exp"}


def test_minting_is_deterministic_and_typed() -> None:
    keys = Keyring.ephemeral()
    args: dict[str, Any] = {"rid": "apr_1", "tool": "t", "digest": "sha256:00", "by": ["a"]}
    one = mint(keys, **args, iat=1, exp=2)
    assert one == mint(keys, **args, iat=1, exp=2)
    header = json.loads(__import__("base64").urlsafe_b64decode(one.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "kid": keys.current.kid, "typ": TYPE}


def test_receipts_signed_before_a_rotation_still_verify(tmp_path: Path) -> None:
    old = Keyring.load(tmp_path)
    token = mint(old, rid="apr_1", tool="t", digest="sha256:00", by=["a"], iat=1, exp=10)
    rotate(tmp_path)
    new = Keyring.load(tmp_path)
    assert new.current.kid != old.current.kid
    assert verify(token, new.public_jwks(), now=5).kid == old.current.kid


async def test_the_jwks_is_public_and_verifies_a_receipt_over_http(tmp_path: Path) -> None:
    live, server, task = await start_live(tmp_path)
    try:
        await _receipt_over_http(live)
    finally:
        await stop_live(server, task)


async def _receipt_over_http(live: Live) -> None:
    async with live.client(None) as anonymous:
        published = await anonymous.get("/.well-known/jwks.json")
    assert published.status_code == 200
    jwks = published.json()
    assert all("d" not in key for key in jwks["keys"])
    assert jwks["keys"][0]["alg"] == "EdDSA"
    async with live.client(live.agent_token()) as agent:
        created = await agent.post(
            "/v1/requests", json={"tool": "issue_refund", "args": {"order_id": "A", "amount": 5}}
        )
    request_id = created.json()["id"]
    async with live.client(live.approver_token()) as approver:
        decided = await approver.post(
            f"/v1/requests/{request_id}/decisions", json={"decision": "approve"}
        )
    body = decided.json()
    # the tool's service holds only the published JWKS (as JSON text, say), nothing else
    receipt = verify(
        body["receipt"], published.text, tool="issue_refund", args={"amount": 5, "order_id": "A"}
    )
    assert receipt.rid == request_id
    with pytest.raises(ReceiptMismatch):
        verify(body["receipt"], jwks, tool="issue_refund", args={"order_id": "A", "amount": 6})


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")
    yield g
    await g.aclose()


async def test_a_gated_tool_sees_its_receipt(gate: Gate) -> None:
    seen: list[str | None] = []

    @gate.tool(policy=Policy(min_role="publisher", editable=["amount"]))
    async def issue_refund(order_id: str, amount: float) -> str:
        seen.append(current_receipt())
        return "ok"

    @gate.tool(policy=Policy(when=False))
    def lookup(order_id: str) -> str:
        seen.append(current_receipt())
        return "found"

    run = Run(agent_id="support", run_id="r1")
    async with ScriptedApprover(gate, lambda r: Approve(modified_args={"amount": 7}), by=PUBLISHER):
        outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 9}, run=run)
    await gate.call("lookup", {"order_id": "A"}, run=run)
    assert outcome.request is not None and outcome.request.receipt is not None
    assert seen == [outcome.request.receipt, None]
    assert current_receipt() is None
    approvals = gate.approvals
    assert isinstance(approvals, LocalApprovals)
    keys = approvals.service.audit_log.keys.public_jwks()
    verify(seen[0] or "", keys, tool="issue_refund", args={"order_id": "A", "amount": 7})
