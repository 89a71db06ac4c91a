"""Respond under attack: only a qualified approver, only where the policy allows it, only
on a pending request, only storable JSON; every refusal a problem document, never a 500."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from signoff.config import parse_config
from signoff.models import Principal, Status
from tests.security.test_agent_data import cli
from tests.security.test_cli_errors import one_line_failure
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_api import create, is_problem

READER = Principal(sub="ada", role="admin")
CONFIG = {
    "tools": [
        {"name": "issue_refund", "min_role": "publisher", "editable": ["amount"]},
        {"name": "wire_money", "min_role": "publisher", "decisions": ["approve", "reject"]},
    ]
}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path, parse_config(CONFIG))
    yield info
    await stop_live(server, task)


async def respond(live: Live, token: str, request_id: str, body: object) -> httpx.Response:
    async with live.client(token) as c:
        if isinstance(body, bytes):
            headers = {"content-type": "application/json"}
            return await c.post(
                f"/v1/requests/{request_id}/decisions", content=body, headers=headers
            )
        return await c.post(f"/v1/requests/{request_id}/decisions", json=body)


async def audit_of(live: Live, request_id: str) -> list[dict[str, object]]:
    async with live.client(live.approver_token("ada", "admin")) as c:
        r = await c.get("/v1/audit", params={"request_id": request_id})
    items: list[dict[str, object]] = r.json()["items"]
    return items


async def test_respond_where_the_policy_leaves_it_out_is_403_and_audited(live: Live) -> None:
    request = await create(live, {"tool": "wire_money", "args": {"amount": 10_000}})
    r = await respond(
        live, live.approver_token(), request["id"], {"decision": "respond", "response": "done"}
    )
    problem = is_problem(r, 403)
    assert "respond" in problem["detail"]
    refused = [e for e in await audit_of(live, request["id"]) if e["type"] == "decision.refused"]
    data = refused[0]["data"]
    assert isinstance(data, dict) and data["attempted"] == "respond"
    assert (await live.service.get(request["id"], READER)).status is Status.PENDING


async def test_an_agent_may_not_respond(live: Live) -> None:
    request = await create(live)
    r = await respond(
        live, live.agent_token(), request["id"], {"decision": "respond", "response": "fine"}
    )
    is_problem(r, 403)
    # nor another agent, nor the agent that asked (separation of duties)
    other = await respond(
        live, live.agent_token("other-bot"), request["id"], {"decision": "respond", "response": 1}
    )
    is_problem(other, 403)


async def test_a_role_too_low_may_not_respond(live: Live) -> None:
    request = await create(live)
    r = await respond(
        live,
        live.approver_token("erin", "editor"),
        request["id"],
        {"decision": "respond", "response": "fine"},
    )
    is_problem(r, 403)


async def test_respond_on_a_request_no_longer_pending_is_409(live: Live) -> None:
    request = await create(live)
    approver = live.approver_token()
    first = await respond(live, approver, request["id"], {"decision": "approve"})
    assert first.status_code == 200
    late = await respond(live, approver, request["id"], {"decision": "respond", "response": "x"})
    is_problem(late, 409)
    answered = await create(live, {"tool": "issue_refund", "args": {"amount": 1}})
    ok = await respond(live, approver, answered["id"], {"decision": "respond", "response": "y"})
    assert ok.status_code == 200
    again = await respond(live, approver, answered["id"], {"decision": "respond", "response": "z"})
    is_problem(again, 409)


async def test_responding_twice_at_once_ends_the_request_once(live: Live) -> None:
    request = await create(live)
    tokens = [live.approver_token(f"p{i}") for i in range(8)]
    results = await asyncio.gather(
        *(
            respond(live, t, request["id"], {"decision": "respond", "response": i})
            for i, t in enumerate(tokens)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 1 and set(codes) == {200, 409}


async def test_a_stale_seen_digest_is_409(live: Live) -> None:
    request = await create(live)
    body = {"decision": "respond", "response": "x", "seen_digest": "sha256:" + "0" * 64}
    is_problem(await respond(live, live.approver_token(), request["id"], body), 409)


@pytest.mark.parametrize(
    "body",
    [
        b'{"decision": "respond", "response": "\\ud800"}',  # a lone surrogate: not storable
        b'{"decision": "respond", "response": {"a": ["\\udfff"]}}',
        b'{"decision": "respond"}',  # no response at all
        b'{"decision": "respond", "response": null}',
        b'{"decision": "respond", "response": "x", "modified_args": {"amount": 1}}',
        b'{"decision": "respond", "response": "x", "reason": 5}',
        b'{"decision": "respond", "response": "x", "seen_digest": ""}',
    ],
)
async def test_a_response_that_cannot_be_taken_is_422(live: Live, body: bytes) -> None:
    request = await create(live)
    r = await respond(live, live.approver_token(), request["id"], body)
    is_problem(r, 422)
    assert (await live.service.get(request["id"], READER)).status is Status.PENDING


async def test_a_huge_response_is_refused_not_stored(live: Live) -> None:
    request = await create(live)
    body = {"decision": "respond", "response": "x" * 70_000}
    r = await respond(live, live.approver_token(), request["id"], body)
    assert r.status_code in (413, 422)
    assert (await live.service.get(request["id"], READER)).status is Status.PENDING


def test_the_cli_refuses_a_response_that_is_not_json(tmp_path: Path) -> None:
    for response in ("{not json", "NaN", "null"):
        result: subprocess.CompletedProcess[str] = cli(
            "respond",
            "apr_x",
            "--response",
            response,
            "--url",
            "http://127.0.0.1:1",
            "--token",
            "t",
            cwd=tmp_path,
        )
        line = one_line_failure(result)
        assert "--response" in line
