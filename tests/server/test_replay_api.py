"""Policy replay over HTTP (POST /v1/policy/replay): the same report as the CLI's, for the
highest role, from a candidate policy file given as text."""

from __future__ import annotations

from typing import Any

from signoff.models import DecisionKind, PolicySpec, RequestSpec, Run
from tests.conftest import AGENT, PUBLISHER
from tests.server.conftest import Live
from tests.server.test_api import is_problem

CANDIDATE = """
[[tools]]
name = "issue_refund"
when = "args.amount > 100"
deny = "args.amount > 1000"
min_role = "admin"

# a candidate copied from a live file: its channels and routes are not read, so the
# secrets it leaves to the environment are not needed here
[channels.approvals]
type = "slack"
channel = "#agent-approvals"

[[routes]]
when = "true"
notify = ["approvals"]
"""


async def asked(live: Live, amount: int) -> str:
    spec = RequestSpec(
        tool="issue_refund",
        args={"order_id": f"O{amount}", "amount": amount},
        run=Run(agent_id=AGENT.sub),
        policy=PolicySpec(min_role="publisher"),
    )
    return (await live.service.submit(spec, AGENT)).request.id


async def test_replay_over_http_gives_the_counts_a_hand_check_gives(live: Live) -> None:
    ids = {amount: await asked(live, amount) for amount in (50, 80, 300, 5000)}
    for amount in (50, 300, 5000):
        await live.service.decide(ids[amount], PUBLISHER, DecisionKind.APPROVE)
    await live.service.decide(ids[80], PUBLISHER, DecisionKind.REJECT, reason="no")
    async with live.client(live.approver_token("ada", "admin")) as ada:
        response = await ada.post("/v1/policy/replay", json={"config": CANDIDATE, "since": "7d"})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    # by hand: 50 and 80 would run unasked (80 was rejected: the loud change), 300 would
    # ask an admin rather than a publisher, 5000 would be denied
    assert report["total"] == 4
    assert report["tools"]["issue_refund"]["verdicts"] == {"run": 2, "ask": 1, "deny": 1}
    assert report["tools"]["issue_refund"]["happened"] == {"approved": 3, "rejected": 1}
    assert report["changed"] == {"run_rejected": 1, "deny": 1, "stricter": 1, "run": 1}
    first = report["changes"][0]
    assert (first["id"], first["change"], first["happened"]) == (
        ids[80],
        "run_rejected",
        "rejected",
    )
    stricter = next(c for c in report["changes"] if c["change"] == "stricter")
    assert stricter["then"] == {"min_role": "publisher", "quorum": 1}
    assert stricter["min_role"] == "admin"
    assert report["changes_truncated"] is False and report["config"] == "candidate"
    # nothing was written: the requests are as they were
    for request_id in ids.values():
        assert (await live.service.get(request_id, PUBLISHER)).status.terminal


async def test_the_whole_history_without_since(live: Live) -> None:
    await asked(live, 10)
    async with live.client(live.approver_token("ada", "admin")) as ada:
        response = await ada.post("/v1/policy/replay", json={"config": CANDIDATE})
    assert response.status_code == 200, response.text
    assert response.json()["since"] is None and response.json()["total"] == 1


async def test_only_the_highest_role_replays(live: Live) -> None:
    async with live.client(live.approver_token("paul", "publisher")) as paul:
        # refused before the candidate is read: a bad file is still a 403
        is_problem(await paul.post("/v1/policy/replay", json={"config": "x = ["}), 403)
    async with live.client(live.agent_token()) as agent:
        is_problem(await agent.post("/v1/policy/replay", json={"config": CANDIDATE}), 403)
    async with live.client(None) as nobody:
        is_problem(await nobody.post("/v1/policy/replay", json={"config": CANDIDATE}), 401)
