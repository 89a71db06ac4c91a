"""Agent-written data is data (invariant 10): never imported, never control, never raw bytes
on a terminal, never unbounded work for the server."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from signoff.channels.console import show
from signoff.config import parse_config
from tests.acceptance.conftest import ROOT
from tests.server.conftest import SECRET, Live, start_live, stop_live
from tests.server.test_api import is_problem

ESC = "\x1b"
PAINTED = "delete_everything\x1b[2K\r\x1b[32mread_only_lookup\x1b]0;pwned\x07\u202e"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path, parse_config({"roles": ["editor", "admin"]}))
    yield info
    await stop_live(server, task)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "signoff", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", **(env or {})},
    )


# -- code to import comes only from the operator -------------------------------------------


async def test_a_runs_recorded_app_is_never_imported_unless_the_operator_lists_it(
    live: Live, tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    async with live.client(live.agent_token("mallory")) as agent:
        response = await agent.put(
            "/v1/runs/run-1",
            json={
                "run_id": "run-1",
                "provider": "anthropic",
                "model": "m",
                "app": "tests.security.evil_app:build",
                "created_at": datetime.now(UTC).isoformat(),
                "updated_at": datetime.now(UTC).isoformat(),
            },
        )
        assert response.status_code == 200, response.text
    db = f"sqlite:///{tmp_path / 'server.db'}"
    refused = cli("runs", "resume", "run-1", "--db", db, env={"EVIL_MARK": str(mark)})
    assert refused.returncode != 0
    assert "not in [runs] apps" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert not mark.exists()  # nothing the agent named was imported
    listed = cli("runs", "list", "--db", db, "--json")
    assert "tests.security.evil_app:build" in listed.stdout  # shown to the operator as a hint


async def test_an_agent_cannot_squat_on_another_agents_run_id(live: Live) -> None:
    body = {
        "run_id": "shared-id",
        "provider": "anthropic",
        "model": "m",
        "created_at": datetime.now(UTC).isoformat(),
        "updated_at": datetime.now(UTC).isoformat(),
    }
    async with (
        live.client(live.agent_token("mallory")) as mallory,
        live.client(live.agent_token("support-bot")) as victim,
    ):
        assert (await mallory.put("/v1/runs/shared-id", json={**body, "model": "evil"})).is_success
        mine = await victim.put("/v1/runs/shared-id", json=body)
        assert mine.status_code == 200, mine.text
        assert (await victim.get("/v1/runs/shared-id")).json()["model"] == "m"
        assert (await mallory.get("/v1/runs/shared-id")).json()["model"] == "evil"


# -- agent text never reaches a terminal raw -------------------------------------------------


async def painted_request(live: Live) -> dict[str, Any]:
    async with live.client(live.agent_token()) as agent:
        response = await agent.post(
            "/v1/requests",
            json={
                "tool": PAINTED,
                "args": {"note": PAINTED, PAINTED: 1},
                "reason": PAINTED,
                "context": {PAINTED: PAINTED, "why": PAINTED},
                "run": {"agent_id": "x", "run_id": PAINTED},
            },
        )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_show_and_pending_print_no_control_characters(live: Live) -> None:
    created = await painted_request(live)
    token = live.approver_token("ada", role="admin")
    for args in (("show", created["id"]), ("pending",), ("show", created["id"], "--json")):
        result = await asyncio.to_thread(cli, *args, "--url", live.url, "--token", token)
        assert result.returncode == 0, result.stderr
        for forbidden in (ESC, "\r", "\x07", "\u202e", "\x9b"):
            assert forbidden not in result.stdout, (args, forbidden)
        assert "delete_" in result.stdout  # shown, escaped, not hidden


async def test_the_watch_prompt_shows_no_control_characters(live: Live) -> None:
    created = await painted_request(live)
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        request = (await admin.get(f"/v1/requests/{created['id']}")).json()
    from signoff.models import ApprovalRequest

    out = io.StringIO()
    show(
        ApprovalRequest.model_validate(request),
        Console(file=out, force_terminal=True, width=200),
        datetime.now(UTC),
    )
    printed = out.getvalue()
    # rich's own styling uses ESC; none may come from the request: strip rich's SGR codes
    import re

    without_styles = re.sub(r"\x1b\[[0-9;]*m", "", printed)
    for forbidden in (ESC, "\r", "\x07", "\u202e"):
        assert forbidden not in without_styles
    assert "\\x1b[2K" in without_styles


# -- schemas from agents cost bounded time ---------------------------------------------------


async def test_a_pathological_pattern_cannot_freeze_the_server(live: Live) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
    }
    async with live.client(live.agent_token()) as agent:
        created = (
            await agent.post(
                "/v1/requests",
                json={
                    "tool": "t",
                    "args": {"code": "aaa"},
                    "args_schema": schema,
                    "policy": {"editable": ["code"]},
                },
            )
        ).json()
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        # with a backtracking engine this edit takes minutes, holding the write path
        edit = admin.post(
            f"/v1/requests/{created['id']}/decisions",
            json={"decision": "approve", "modified_args": {"code": "a" * 40 + "!"}},
        )
        response = await asyncio.wait_for(edit, 20)
        assert is_problem(response, 422)["detail"].startswith("the modified arguments do not fit")
        assert (await asyncio.wait_for(admin.get("/healthz"), 5)).status_code == 200


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "object", "properties": {"x": {"pattern": "(?=a)b"}}}, "not supported"),
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/nope"}}}, "does not resolve"),
        ({"type": "object", "properties": {"x": {"$ref": "https://evil.example/s"}}}, "resolve"),
    ],
)
async def test_schemas_that_cannot_be_checked_safely_are_refused(
    live: Live, schema: dict[str, Any], why: str
) -> None:
    async with live.client(live.agent_token()) as agent:
        response = await agent.post(
            "/v1/requests", json={"tool": "t", "args": {}, "args_schema": schema}
        )
    assert why in is_problem(response, 422)["detail"]


# -- no known role, no access ------------------------------------------------------------------


@pytest.mark.parametrize("role", [None, "superuser", ""])
async def test_an_approver_without_a_known_role_reads_nothing(live: Live, role: str | None) -> None:
    created = await painted_request(live)
    from signoff.auth import Issuer

    claims_role = role
    issuer = Issuer(SECRET, live.config.auth, live.config.roles)
    # the server's own issuer refuses unknown roles; a token from elsewhere may carry one
    import time

    import jwt

    now = int(time.time())
    claims: dict[str, Any] = {"sub": "eve", "kind": "approver", "iat": now, "exp": now + 600}
    if claims_role is not None:
        claims["role"] = claims_role
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    del issuer
    async with live.client(token) as eve:
        for path in (
            "/v1/requests",
            f"/v1/requests/{created['id']}",
            "/v1/stats",
            "/v1/runs",
            "/v1/runs/any",
            "/v1/events",
            "/v1/audit",
        ):
            response = await eve.get(path)
            assert response.status_code == 403, (path, response.status_code, response.text)
