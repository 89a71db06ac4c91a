"""Standing grants over HTTP (CONTRACT.md §9): approve and grant, GET /v1/grants, DELETE."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Live
from tests.server.test_api import REFUND, is_problem


async def submit(live: Live, body: dict[str, Any] = REFUND, **extra: Any) -> dict[str, Any]:
    async with live.client(live.agent_token()) as agent:
        response = await agent.post("/v1/requests", json={**body, **extra})
        assert response.status_code in (200, 201), response.text
        created: dict[str, Any] = response.json()
        return created


async def test_approve_and_grant_then_list_and_revoke(live: Live) -> None:
    first = await submit(live)
    async with live.client(live.approver_token()) as paul:
        decided = await paul.post(
            f"/v1/requests/{first['id']}/decisions",
            json={"decision": "approve", "grant": {"ttl": "1h", "scope": "identical"}},
        )
        assert decided.status_code == 200, decided.text
        grant_id = decided.json()["decisions"][-1]["grant_id"]
        assert grant_id.startswith("grt_")

        covered = await submit(live, tool_call_id="toolu_2")
        assert covered["status"] == "approved"
        (decision,) = covered["decisions"]
        assert decision["via"] == "grant" and decision["grant_id"] == grant_id

        listed = await paul.get("/v1/grants", params={"active": "true", "tool": "issue_refund"})
        assert listed.status_code == 200, listed.text
        (item,) = listed.json()["items"]
        assert item["id"] == grant_id and item["active"] is True
        assert item["agent"] == "support-bot" and item["scope"] == "identical"

        revoked = await paul.delete(f"/v1/grants/{grant_id}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["active"] is False and revoked.json()["revoked_by"] == "paul"
        is_problem(await paul.delete(f"/v1/grants/{grant_id}"), 409)
        is_problem(await paul.delete("/v1/grants/grt_missing"), 404)

    asked = await submit(live, tool_call_id="toolu_3")
    assert asked["status"] == "pending"


async def test_bad_grants_are_clear_problems(live: Live) -> None:
    pending = await submit(live)
    path = f"/v1/requests/{pending['id']}/decisions"
    async with live.client(live.approver_token()) as paul:
        for grant in (
            {"ttl": "100y"},
            {"ttl": "400d"},
            {"ttl": 10},
            {"ttl": "1h", "scope": "everything"},
            {"scope": "tool"},
            {"ttl": "1h", "extra": 1},
            "1h",
        ):
            body = is_problem(
                await paul.post(path, json={"decision": "approve", "grant": grant}), 422
            )
            assert "grant" in body["detail"] or "ttl" in body["detail"], body
        rejected = {"decision": "reject", "reason": "no", "grant": {"ttl": "1h"}}
        is_problem(await paul.post(path, json=rejected), 422)
        edited = {"decision": "approve", "modified_args": {"amount": 1}, "grant": {"ttl": "1h"}}
        is_problem(await paul.post(path, json=edited), 422)
        is_problem(await paul.get("/v1/grants", params={"active": "maybe"}), 400)
        is_problem(await paul.get("/v1/grants", params={"limit": "-1"}), 400)
        is_problem(await paul.get("/v1/grants", params={"limit": "0"}), 422)
        # none of these granted, nor decided
        assert (await paul.get("/v1/grants")).json()["items"] == []
        assert (await paul.get(f"/v1/requests/{pending['id']}")).json()["status"] == "pending"
    async with live.client(live.agent_token()) as agent:
        is_problem(await agent.get("/v1/grants"), 403)
        is_problem(await agent.delete("/v1/grants/grt_x"), 403)


async def test_a_batch_approval_grants_for_each_request(live: Live) -> None:
    first = await submit(live)
    other = await submit(live, args={"order_id": "ORD-2", "amount": 5}, tool_call_id="toolu_9")
    async with live.client(live.approver_token()) as paul:
        bad = {"ids": [first["id"]], "decision": "approve", "grant": {"ttl": "100y"}}
        is_problem(await paul.post("/v1/decisions", json=bad), 422)
        rejected = {"ids": [first["id"]], "decision": "reject", "reason": "no"}
        is_problem(await paul.post("/v1/decisions", json={**rejected, "grant": {"ttl": "1h"}}), 422)
        body = {
            "ids": [first["id"], other["id"]],
            "decision": "approve",
            "grant": {"ttl": "1h", "scope": "identical"},
        }
        response = await paul.post("/v1/decisions", json=body)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["status"] for r in results] == [200, 200]
        grant_ids = {r["request"]["decisions"][-1]["grant_id"] for r in results}
        assert len(grant_ids) == 2 and None not in grant_ids
        listed = (await paul.get("/v1/grants")).json()["items"]
        assert {g["id"] for g in listed} == grant_ids
    # each grant covers its own arguments: both identical calls are approved at once
    again = await submit(live, tool_call_id="toolu_10")
    assert again["status"] == "approved" and again["decisions"][0]["via"] == "grant"
    repeat = await submit(live, args={"order_id": "ORD-2", "amount": 5}, tool_call_id="toolu_11")
    assert repeat["status"] == "approved"
    changed = await submit(live, args={"order_id": "ORD-2", "amount": 6}, tool_call_id="toolu_12")
    assert changed["status"] == "pending"
