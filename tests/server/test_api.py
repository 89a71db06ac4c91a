"""The HTTP API against a real server (CONTRACT.md §3): paths, fields, statuses, problems."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.server.conftest import Live

REFUND: dict[str, Any] = {
    "tool": "issue_refund",
    "args": {"order_id": "ORD-1", "amount": 250},
    "tool_call_id": "toolu_1",
    "run": {"agent_id": "support", "run_id": "r1", "metadata": {"environment": "test"}},
    "reason": "Refund $250 for ORD-1",
    "context": {"why": "damaged", "affected": "order ORD-1", "reversible": False},
    "risk": "high",
    "policy": {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"]},
    "args_schema": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}},
        "required": ["order_id", "amount"],
    },
}

REQUEST_FIELDS = {
    "id",
    "status",
    "tool",
    "args",
    "final_args",
    "tool_call_id",
    "run",
    "requested_by",
    "reason",
    "context",
    "risk",
    "policy",
    "created_at",
    "expires_at",
    "decided_at",
    "decisions",
    "outcome",
}


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://signoff.dev/problems/")
    assert body["title"] and body["detail"]
    return body


async def create(
    live: Live, body: dict[str, Any] | None = None, agent: str = "support-bot"
) -> dict[str, Any]:
    async with live.client(live.agent_token(agent)) as c:
        r = await c.post("/v1/requests", json=body or REFUND)
    assert r.status_code in (200, 201), r.text
    created: dict[str, Any] = r.json()
    return created


# -- create, read, list ------------------------------------------------------------------


async def test_create_returns_the_contract_request_object(live: Live) -> None:
    async with live.client(live.agent_token()) as c:
        r = await c.post("/v1/requests", json=REFUND)
    assert r.status_code == 201
    body = r.json()
    assert set(body) >= REQUEST_FIELDS
    assert r.headers["location"] == f"/v1/requests/{body['id']}"
    assert body["id"].startswith("apr_")
    assert body["status"] == "pending"
    assert body["args"] == body["final_args"] == {"order_id": "ORD-1", "amount": 250}
    assert body["requested_by"] == "support-bot"
    assert body["run"] == {
        "agent_id": "support-bot",  # an agent's run is its token's subject's
        "run_id": "r1",
        "session_id": None,
        "metadata": {"environment": "test"},
    }
    assert body["policy"] == {
        "min_role": "publisher",
        "quorum": 1,
        "timeout_s": 300.0,
        "editable": ["amount"],
        "allow_self_approval": False,
        "decisions": ["approve", "edit", "reject", "respond"],
    }
    assert body["risk"] == "high"
    assert body["decisions"] == [] and body["outcome"] is None and body["decided_at"] is None
    assert body["created_at"].endswith("Z") and body["expires_at"].endswith("Z")


async def test_create_is_idempotent(live: Live) -> None:
    async with live.client(live.agent_token()) as c:
        first = await c.post("/v1/requests", json=REFUND)
        again = await c.post("/v1/requests", json=REFUND)
        by_header = await c.post(
            "/v1/requests",
            json={**REFUND, "tool_call_id": None},
            headers={"Idempotency-Key": "k-9"},
        )
        by_header_again = await c.post(
            "/v1/requests",
            json={**REFUND, "tool_call_id": None},
            headers={"Idempotency-Key": "k-9"},
        )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert (by_header.status_code, by_header_again.status_code) == (201, 200)
    assert by_header.json()["id"] == by_header_again.json()["id"]


async def test_run_defaults_to_the_agent(live: Live) -> None:
    created = await create(live, {"tool": "t", "args": {}})
    assert created["run"]["agent_id"] == "support-bot"


async def test_get_and_list(live: Live) -> None:
    ids = [(await create(live, {**REFUND, "tool_call_id": f"c{i}"}))["id"] for i in range(5)]
    async with live.client(live.approver_token()) as c:
        one = await c.get(f"/v1/requests/{ids[0]}")
        page = await c.get("/v1/requests", params={"limit": 2})
        page2 = await c.get(
            "/v1/requests", params={"limit": 2, "cursor": page.json()["next_cursor"]}
        )
        pending = await c.get("/v1/requests", params={"status": "pending", "tool": "issue_refund"})
        none = await c.get("/v1/requests", params={"status": "approved"})
    assert one.json()["id"] == ids[0]
    assert [r["id"] for r in page.json()["items"]] == [ids[4], ids[3]]
    assert [r["id"] for r in page2.json()["items"]] == [ids[2], ids[1]]
    assert len(pending.json()["items"]) == 5
    assert none.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"status": "maybe"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "many"},
        {"risk": "x"},
        {"cursor": "!!"},
    ],
)
async def test_bad_list_queries_are_422(live: Live, params: dict[str, str]) -> None:
    async with live.client(live.approver_token()) as c:
        r = await c.get("/v1/requests", params=params)
    is_problem(r, 422)


async def test_unknown_request_is_404(live: Live) -> None:
    async with live.client(live.approver_token()) as c:
        r = await c.get("/v1/requests/apr_doesnotexist")
    is_problem(r, 404)


# -- deciding ----------------------------------------------------------------------------


async def test_approve_reject_edit(live: Live) -> None:
    a = await create(live, {**REFUND, "tool_call_id": "a"})
    b = await create(live, {**REFUND, "tool_call_id": "b"})
    c_ = await create(live, {**REFUND, "tool_call_id": "c"})
    async with live.client(live.approver_token()) as c:
        approved = await c.post(f"/v1/requests/{a['id']}/decisions", json={"decision": "approve"})
        rejected = await c.post(
            f"/v1/requests/{b['id']}/decisions", json={"decision": "reject", "reason": "no"}
        )
        edited = await c.post(
            f"/v1/requests/{c_['id']}/decisions",
            json={"decision": "approve", "modified_args": {"amount": 100}, "reason": "partial"},
        )
    assert approved.json()["status"] == "approved"
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decisions"][0]["reason"] == "no"
    body = edited.json()
    assert body["final_args"] == {"order_id": "ORD-1", "amount": 100}
    assert body["args"] == {"order_id": "ORD-1", "amount": 250}
    [d] = body["decisions"]
    assert {k: d[k] for k in ("decision", "by", "role", "reason", "modified_args", "via")} == {
        "decision": "approve",
        "by": "paul",
        "role": "publisher",
        "reason": "partial",
        "modified_args": {"amount": 100},
        "via": "api",
    }


async def test_decision_errors(live: Live) -> None:
    req = await create(live)
    url = f"/v1/requests/{req['id']}/decisions"
    async with live.client(live.approver_token("erin", "editor")) as low:
        is_problem(await low.post(url, json={"decision": "approve"}), 403)
    async with live.client(live.approver_token()) as c:
        is_problem(
            await c.post(url, json={"decision": "approve", "modified_args": {"order_id": "X"}}), 422
        )
        is_problem(
            await c.post(url, json={"decision": "approve", "modified_args": {"amount": -1}}), 422
        )
        is_problem(await c.post(url, json={"decision": "reject"}), 422)
        maybe = is_problem(await c.post(url, json={"decision": "maybe"}), 422)
        assert maybe["detail"] == "decision: 'maybe' is not one of 'approve', 'reject', 'respond'"
        empty = is_problem(await c.post(url, json={}), 422)
        assert empty["detail"].startswith("decision: required")
        # the signal shape takes true or false themselves: nothing coerces into an approval
        for loose in ("yes", "true", 1, "on"):
            is_problem(await c.post(url, json={"approved": loose}), 422)
        assert (await c.get(f"/v1/requests/{req['id']}")).json()["status"] == "pending"
        is_problem(await c.post(url, json={"decision": "approve", "by": "mallory"}), 422)
        assert (await c.post(url, json={"decision": "approve"})).status_code == 200
        is_problem(await c.post(url, json={"decision": "reject", "reason": "late"}), 409)
        is_problem(
            await c.post("/v1/requests/apr_nope/decisions", json={"decision": "approve"}), 404
        )


async def test_batch(live: Live) -> None:
    ids = [(await create(live, {**REFUND, "tool_call_id": f"c{i}"}))["id"] for i in range(3)]
    admin_only = await create(
        live, {**REFUND, "tool_call_id": "x", "policy": {"min_role": "admin"}}
    )
    async with live.client(live.approver_token()) as c:
        await c.post(f"/v1/requests/{ids[0]}/decisions", json={"decision": "approve"})
        r = await c.post(
            "/v1/decisions",
            json={"ids": [*ids, admin_only["id"], "apr_missing"], "decision": "approve"},
        )
        no_reason = await c.post("/v1/decisions", json={"ids": ids, "decision": "reject"})
    assert r.status_code == 200
    results = {x["id"]: x for x in r.json()["results"]}
    assert results[ids[0]]["status"] == 409 and results[ids[0]]["problem"]["status"] == 409
    assert results[ids[1]]["status"] == 200 and results[ids[1]]["request"]["status"] == "approved"
    assert results[ids[2]]["status"] == 200
    assert results[admin_only["id"]]["status"] == 403
    assert results["apr_missing"]["status"] == 404
    is_problem(no_reason, 422)


async def test_batch_respond_answers_each_in_the_tools_place(live: Live) -> None:
    ids = [(await create(live, {**REFUND, "tool_call_id": f"r{i}"}))["id"] for i in range(2)]
    no_respond = await create(
        live,
        {**REFUND, "tool_call_id": "n", "policy": {**REFUND["policy"], "decisions": ["approve"]}},
    )
    answer = {"refunded": False, "note": "Handled by phone"}
    async with live.client(live.approver_token()) as c:
        missing = await c.post("/v1/decisions", json={"ids": ids, "decision": "respond"})
        is_problem(missing, 422)
        r = await c.post(
            "/v1/decisions",
            json={"ids": [*ids, no_respond["id"]], "decision": "respond", "response": answer},
        )
    assert r.status_code == 200, r.text
    results = {x["id"]: x for x in r.json()["results"]}
    for request_id in ids:
        assert results[request_id]["status"] == 200
        decided = results[request_id]["request"]
        assert decided["status"] == "responded"
        assert decided["decisions"][-1]["response"] == answer
    assert results[no_respond["id"]]["status"] == 403


# -- the agent's verbs ----------------------------------------------------------------------


async def test_wait_long_polls(live: Live) -> None:
    req = await create(live)
    async with (
        live.client(live.agent_token()) as agent,
        live.client(live.approver_token()) as approver,
    ):
        quick = await agent.get(f"/v1/requests/{req['id']}/wait", params={"timeout": 0})
        assert quick.json()["status"] == "pending"
        waiting = asyncio.create_task(
            agent.get(f"/v1/requests/{req['id']}/wait", params={"timeout": 20})
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await approver.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
        done = await asyncio.wait_for(waiting, 5)
        assert done.json()["status"] == "approved"
        for bad in ("61", "-1", "soon"):
            is_problem(
                await agent.get(f"/v1/requests/{req['id']}/wait", params={"timeout": bad}), 422
            )


async def test_wait_times_out_pending(live: Live) -> None:
    req = await create(live)
    async with live.client(live.agent_token()) as agent:
        r = await agent.get(f"/v1/requests/{req['id']}/wait", params={"timeout": 0.3})
    assert r.status_code == 200 and r.json()["status"] == "pending"


async def test_cancel_consume_outcome(live: Live) -> None:
    a = await create(live, {**REFUND, "tool_call_id": "a"})
    b = await create(live, {**REFUND, "tool_call_id": "b"})
    async with (
        live.client(live.agent_token()) as agent,
        live.client(live.approver_token()) as approver,
    ):
        cancelled = await agent.post(
            f"/v1/requests/{a['id']}/cancel", json={"reason": "not needed"}
        )
        assert cancelled.json()["status"] == "cancelled"
        is_problem(await agent.post(f"/v1/requests/{a['id']}/cancel"), 409)
        is_problem(await agent.post(f"/v1/requests/{b['id']}/consume"), 409)
        await approver.post(f"/v1/requests/{b['id']}/decisions", json={"decision": "approve"})
        consumed = await agent.post(f"/v1/requests/{b['id']}/consume")
        assert consumed.status_code == 200
        is_problem(await agent.post(f"/v1/requests/{b['id']}/consume"), 409)
        done = await agent.post(
            f"/v1/requests/{b['id']}/outcome",
            json={"status": "succeeded", "detail": {"refund_id": "rf_1"}},
        )
        assert done.json()["outcome"]["status"] == "succeeded"
        assert done.json()["outcome"]["detail"] == {"refund_id": "rf_1"}
        is_problem(
            await agent.post(f"/v1/requests/{b['id']}/outcome", json={"status": "failed"}), 409
        )
        is_problem(await agent.post(f"/v1/requests/{b['id']}/outcome", json={"status": "meh"}), 422)


# -- bad input -------------------------------------------------------------------------------


async def test_malformed_bodies(live: Live) -> None:
    async with live.client(live.agent_token()) as c:

        async def post(content: bytes) -> httpx.Response:
            headers = {"content-type": "application/json"}
            return await c.post("/v1/requests", content=content, headers=headers)

        is_problem(await post(b"{not json"), 400)
        is_problem(await post(b""), 400)
        is_problem(await post(b"[1, 2]"), 422)
        is_problem(await post(b'{"args": {}}'), 422)
        body = is_problem(await post(b'{"tool": "t", "args": "x", "risk": "huge"}'), 422)
        assert len(body["errors"]) == 2
        deep: Any = "x"
        for _ in range(40):
            deep = {"a": deep}
        is_problem(await c.post("/v1/requests", json={"tool": "t", "args": deep}), 422)
        very_deep = b'{"tool": "t", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        is_problem(await post(very_deep), 400)  # too deep to parse: a clear 400, not a crash
        big = {"tool": "t", "args": {"blob": "x" * 1_100_000}}
        is_problem(await c.post("/v1/requests", json=big), 413)
        is_problem(
            await c.post("/v1/requests", json={**REFUND, "policy": {"min_role": "root"}}), 422
        )


async def test_unknown_paths_and_methods_are_problems(live: Live) -> None:
    async with live.client(None) as c:
        is_problem(await c.get("/v1/nothing-here"), 404)
        is_problem(await c.delete("/v1/requests"), 405)


# -- audit, health, metrics, openapi -----------------------------------------------------------


async def test_audit_and_verify(live: Live) -> None:
    req = await create(live)
    async with live.client(live.approver_token()) as publisher:
        await publisher.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
        is_problem(await publisher.get("/v1/audit"), 403)
    async with live.client(live.approver_token("ada", "admin")) as admin:
        audit = (await admin.get("/v1/audit", params={"request_id": req["id"]})).json()
        assert [e["type"] for e in audit["items"]] == ["request.created", "request.approved"]
        assert audit["next_after"] is None
        first = audit["items"][0]
        assert set(first) == {
            "position",
            "seq",
            "type",
            "request_id",
            "actor",
            "at",
            "via",
            "data",
            "prev_hash",
            "hash",
        }
        assert first["seq"] is None and first["hash"] is None  # not sealed yet
        page = (await admin.get("/v1/audit", params={"limit": 1})).json()
        assert len(page["items"]) == 1 and page["next_after"] == first["position"]
        verify = (await admin.get("/v1/audit/verify")).json()
        assert verify["ok"] is True and verify["events"] == 2 and len(verify["head"]) == 64
        assert verify["unsealed"] == 2 and verify["checkpoint"] is None


async def test_the_sealed_log_its_checkpoints_and_keys(live: Live) -> None:
    """Sealed events carry their links; the checkpoints and the public keys that verify them
    are published; a checkpoint kept elsewhere is checked against the log."""
    req = await create(live)
    await live.service.audit_log.seal()
    async with live.client(live.approver_token("ada", "admin")) as admin:
        items = (await admin.get("/v1/audit")).json()["items"]
        assert [e["seq"] for e in items] == [1]
        checkpoints = (await admin.get("/v1/audit/checkpoints")).json()
        [checkpoint] = checkpoints["items"]
        assert checkpoints["next_after"] is None
        assert checkpoint["size"] == 1 and checkpoint["head"] == items[0]["hash"]
        async with live.client(None) as anyone:
            keys = (await anyone.get("/v1/audit/keys")).json()["keys"]
        assert [k["kid"] for k in keys] == [checkpoint["kid"]]
        assert keys[0]["kty"] == "OKP" and "d" not in keys[0]
        against = await admin.post("/v1/audit/verify", json={"against": checkpoint})
        assert against.status_code == 200 and against.json()["ok"] is True
        forged = {**checkpoint, "size": 2}
        refused = (await admin.post("/v1/audit/verify", json={"against": forged})).json()
        assert refused["ok"] is False
        is_problem(await admin.post("/v1/audit/verify", json={"against": {"size": "x"}}), 422)
    async with live.client(live.approver_token()) as publisher:
        is_problem(await publisher.get("/v1/audit/checkpoints"), 403)
        is_problem(await publisher.post("/v1/audit/verify", json={"against": checkpoint}), 403)
    assert req["status"] == "pending"


async def test_health_ready_metrics(live: Live) -> None:
    await create(live)
    async with live.client(None) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).json() == {"status": "ready"}
        text = (await c.get("/metrics")).text
    assert 'signoff_requests{status="pending"} 1.0' in text
    assert "signoff_pending_requests 1.0" in text
    assert "signoff_decision_seconds" in text
    assert (
        'signoff_http_requests_total{endpoint="create_request",method="POST",status="201"} 1.0'
        in text
    )


async def test_decision_latency_is_measured(live: Live) -> None:
    req = await create(live)
    async with live.client(live.approver_token()) as c:
        await c.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
        text = (await c.get("/metrics")).text
    assert 'signoff_decision_seconds_count{decision="approved"} 1.0' in text


async def test_openapi_is_served(live: Live) -> None:
    async with live.client(None) as c:
        doc = (await c.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {
        "/v1/requests",
        "/v1/requests/{id}",
        "/v1/requests/{id}/wait",
        "/v1/requests/{id}/decisions",
        "/v1/decisions",
        "/v1/requests/{id}/cancel",
        "/v1/requests/{id}/outcome",
        "/v1/events",
        "/v1/audit",
        "/v1/audit/verify",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert "ApprovalRequest" in doc["components"]["schemas"]
