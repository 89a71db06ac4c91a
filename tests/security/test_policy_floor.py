"""One policy floor on every path (invariant 6): what an agent submits over HTTP, what code
declares in process and what a hook asks for are all held to the operator's config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signoff import CallStatus, Gate, Policy, Principal, Run, request_approval
from signoff.config import Config, parse_config
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_api import is_problem

CONFIG: dict[str, Any] = {
    "defaults": {"timeout": "5m"},
    "tools": [
        {
            "name": "issue_refund",
            "when": "args.amount > 100",
            "deny": "args.amount > 10000",
            "min_role": "publisher",
            "timeout": "30m",
            "editable": ["amount"],
            "reason": "Refund ${args.amount} for {args.order_id}",
            "reject_message": "Refunds over $10,000 need the finance team.",
            "channels": ["ops-hook"],
        },
        {"name": "delete_account", "min_role": "admin"},
    ],
}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path, parse_config(CONFIG))
    yield info
    await stop_live(server, task)


def refund(amount: float, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tool": "issue_refund",
        "args": {"order_id": "ORD-9", "amount": amount},
        "reason": "totally harmless, just approve",
    }
    body.update(extra)
    return body


async def test_a_config_deny_refuses_an_http_submission(live: Live) -> None:
    async with live.client(live.agent_token()) as agent:
        response = await agent.post("/v1/requests", json=refund(50_000))
        problem = is_problem(response, 403)
        assert problem["type"].endswith("/policy_denied")
        assert "finance team" in problem["detail"]
    async with live.client(live.approver_token(role="admin")) as admin:
        listed = (await admin.get("/v1/requests")).json()["items"]
    assert listed == []  # nothing was created, so nothing can be approved or consumed


async def test_the_operators_terms_apply_to_what_an_agent_submits(live: Live) -> None:
    async with live.client(live.agent_token()) as agent:
        response = await agent.post(
            "/v1/requests",
            json=refund(
                250,
                run={"agent_id": "someone-else", "run_id": "r1"},
                policy={"min_role": "editor", "allow_self_approval": True},
                channels=["agent-channel"],
            ),
        )
    assert response.status_code == 201, response.text
    request = response.json()
    # the operator's reason, not the agent's text
    assert request["reason"] == "Refund $250 for ORD-9"
    policy = request["policy"]
    assert policy["min_role"] == "publisher"
    assert policy["editable"] == ["amount"]
    # a per-tool timeout longer than the default applies
    assert policy["timeout_s"] == 1800
    assert policy["allow_self_approval"] is False
    assert request["channels"] == ["agent-channel", "ops-hook"]
    # an agent's run is its own, whatever it wrote
    assert request["run"]["agent_id"] == "support-bot"
    assert request["requested_by"] == "support-bot"


async def test_an_agent_cannot_give_itself_self_approval(live: Live) -> None:
    async with live.client(live.agent_token("ada")) as agent:
        created = await agent.post(
            "/v1/requests",
            json={
                "tool": "delete_account",
                "args": {"user": "u1"},
                "policy": {"allow_self_approval": True},
            },
        )
    assert created.status_code == 201
    # the same person, now as an approver with the highest role
    async with live.client(live.approver_token("ada", role="admin")) as same_person:
        response = await same_person.post(
            f"/v1/requests/{created.json()['id']}/decisions", json={"decision": "approve"}
        )
    assert is_problem(response, 403)["detail"].startswith("you requested this call")


async def test_a_remote_gate_hears_the_servers_deny(live: Live) -> None:
    ran: list[float] = []
    async with Gate(live.url, token=live.agent_token()) as gate:

        @gate.tool(policy=Policy(when=True))  # the agent's code knows nothing of the deny
        async def issue_refund(order_id: str, amount: float) -> str:
            ran.append(amount)
            return "done"

        outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 20_000})
    assert outcome.status is CallStatus.REJECTED
    assert "finance team" in outcome.to_model()
    assert ran == []


async def test_a_hooks_request_for_approval_does_not_skip_deny() -> None:
    config: Config = parse_config(CONFIG)
    gate = Gate("memory://", config=config)
    ran: list[float] = []

    @gate.tool(policy=Policy(when=False))
    async def issue_refund(order_id: str, amount: float) -> str:
        ran.append(amount)
        return "done"

    gate.hook(lambda ctx: request_approval("a hook wants a human"))
    outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 50_000})
    assert outcome.status is CallStatus.REJECTED
    assert "finance team" in outcome.to_model()
    assert await gate.pending() == [] and ran == []
    await gate.aclose()


async def test_always_stays_always_in_an_embedded_gate() -> None:
    config = parse_config(
        {
            "always_require_approval": ["issue_refund"],
            "tools": [{"name": "issue_refund", "when": "args.amount > 100"}],
        }
    )
    gate = Gate("memory://", config=config)

    @gate.tool(policy=Policy(when=False))
    async def issue_refund(order_id: str, amount: float) -> str:
        return "done"

    asked = await gate.call(
        "issue_refund",
        {"order_id": "A", "amount": 5},
        run=Run(run_id="r"),
        tool_call_id="t",
        wait=False,
    )
    assert asked.status is CallStatus.PENDING
    assert asked.request is not None
    await gate.reject(asked.request.id, by=Principal(sub="ada", role="admin"), reason="no")
    await gate.aclose()
