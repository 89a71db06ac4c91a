"""An approval counts for what the approver saw (invariant 9): a decision carries the
``args_digest`` its approver was shown, and one made on arguments that have changed since is
refused with 409, on every path that decides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signoff import Conflict, Gate, Policy, Principal, Run, Status
from signoff.config import parse_config
from signoff.service import ApprovalService
from tests.conftest import AGENT, ServiceFactory, refund_spec
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_api import is_problem

A = Principal(sub="alice", role="publisher")
B = Principal(sub="bob", role="publisher")
QUORUM_2 = {"tools": [{"name": "issue_refund", "quorum": 2, "editable": ["amount"]}]}


async def quorum_service(make_service: ServiceFactory) -> ApprovalService:
    service = make_service(parse_config(QUORUM_2))
    await service.start()
    return service


async def test_an_approval_of_arguments_that_changed_is_refused(
    make_service: ServiceFactory,
) -> None:
    service = await quorum_service(make_service)
    request = (await service.submit(refund_spec(), AGENT)).request
    seen_by_b = (await service.get(request.id, B)).args_digest  # B reads amount 250
    edited = await service.decide(request.id, A, "approve", modified_args={"amount": 99999})
    assert edited.status is Status.PENDING and edited.final_args["amount"] == 99999
    with pytest.raises(Conflict, match="changed since you looked") as refused:
        await service.decide(request.id, B, "approve", seen_digest=seen_by_b)
    # the approver is shown what the arguments are now
    assert refused.value.detail["final_args"]["amount"] == 99999
    still = await service.get(request.id, A)
    assert still.status is Status.PENDING and len(still.approvals) == 1
    # looking again, B may approve what is there now
    done = await service.decide(request.id, B, "approve", seen_digest=still.args_digest)
    assert done.status is Status.APPROVED and done.final_args["amount"] == 99999


async def test_a_rejection_also_names_what_it_saw(make_service: ServiceFactory) -> None:
    service = await quorum_service(make_service)
    request = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(request.id, A, "approve", modified_args={"amount": 1})
    with pytest.raises(Conflict):
        await service.decide(
            request.id, B, "reject", reason="too much", seen_digest=request.args_digest
        )
    assert (await service.get(request.id, A)).status is Status.PENDING


async def test_a_batch_decision_checks_each_digest(make_service: ServiceFactory) -> None:
    service = await quorum_service(make_service)
    first = (await service.submit(refund_spec(tool_call_id="a"), AGENT)).request
    second = (await service.submit(refund_spec(tool_call_id="b"), AGENT)).request
    await service.decide(first.id, A, "approve", modified_args={"amount": 5})
    results = dict(
        await service.decide_many(
            [first.id, second.id],
            B,
            "approve",
            seen_digests={first.id: first.args_digest, second.id: second.args_digest},
        )
    )
    assert isinstance(results[first.id], Conflict)
    assert not isinstance(results[second.id], Exception)


async def test_the_python_approver_api_sends_what_it_read() -> None:
    gate = Gate("memory://", config=parse_config(QUORUM_2))

    @gate.tool(policy=Policy(editable=["amount"]))
    async def issue_refund(order_id: str, amount: float) -> str:
        return "done"

    asked = await gate.call(
        "issue_refund",
        {"order_id": "A", "amount": 250},
        run=Run(run_id="r"),
        tool_call_id="t",
        wait=False,
    )
    assert asked.request is not None
    read_by_b = asked.request
    await gate.approve(read_by_b.id, by=A, modified_args={"amount": 99999})
    with pytest.raises(Conflict):
        await gate.approve(read_by_b, by=B)  # the request object B read carries its digest
    await gate.aclose()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path, parse_config(QUORUM_2))
    yield info
    await stop_live(server, task)


async def test_over_http_a_stale_approval_is_409_with_the_new_arguments(live: Live) -> None:
    async with live.client(live.agent_token()) as agent:
        created = (
            await agent.post(
                "/v1/requests",
                json={"tool": "issue_refund", "args": {"order_id": "A", "amount": 100}},
            )
        ).json()
    async with (
        live.client(live.approver_token("alice")) as alice,
        live.client(live.approver_token("bob")) as bob,
    ):
        url = f"/v1/requests/{created['id']}/decisions"
        edit = await alice.post(
            url,
            json={
                "decision": "approve",
                "modified_args": {"amount": 99999},
                "seen_digest": created["args_digest"],
            },
        )
        assert edit.status_code == 200, edit.text
        stale = await bob.post(
            url, json={"decision": "approve", "seen_digest": created["args_digest"]}
        )
        problem = is_problem(stale, 409)
        assert problem["final_args"] == {"order_id": "A", "amount": 99999}
        # the seed's signal shape is refused the same way, and works with the new digest
        signal = await bob.post(url, json={"approved": True, "seen_digest": created["args_digest"]})
        is_problem(signal, 409)
        fresh = await bob.post(url, json={"approved": True, "seen_digest": problem["args_digest"]})
        assert fresh.status_code == 200 and fresh.json()["status"] == "approved"
