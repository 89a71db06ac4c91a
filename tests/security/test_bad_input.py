"""Bad input gets a clear answer (a 400 or 422 problem, an INVALID outcome), never a 500, a
broken stream or a traceback, on every path that takes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import CallStatus, Gate, Policy
from signoff.config import parse_config
from signoff.service import ApprovalService
from tests.conftest import AGENT, refund_spec
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, RunningProvider, start_provider
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_api import is_problem


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path)
    yield info
    await stop_live(server, task)


RAW_BODIES = [
    (b'{"tool": "t", "args": {"x": NaN}}', 400),
    (b'{"tool": "t", "args": {"x": Infinity}}', 400),
    (b'{"tool": "t", "args": {"x": -Infinity}}', 400),
    (b'{"tool": "t", "args": {"x": "\\ud800"}}', 422),
    (b'{"tool": "t", "args": {"\\udfff": 1}}', 422),
    (b'{"tool": "t\\udc00", "args": {}}', 422),
    (b'{"tool": "t", "args": {}, "policy": {"timeout_s": 1e300}}', 422),
    (b'{"tool": "t", "args": {}, "policy": {"quorum": 1e300}}', 422),
    (b'{"tool": "t", "args": {"x": 1e400}}', 422),  # parses as infinity
]


@pytest.mark.parametrize(("body", "status"), RAW_BODIES)
async def test_bodies_that_are_not_storable_json(live: Live, body: bytes, status: int) -> None:
    async with live.client(live.agent_token()) as agent:
        response = await agent.post(
            "/v1/requests", content=body, headers={"Content-Type": "application/json"}
        )
    is_problem(response, status)


async def test_decisions_with_bad_json_are_problems(live: Live) -> None:
    async with live.client(live.agent_token()) as agent:
        created = (
            await agent.post(
                "/v1/requests",
                json={"tool": "t", "args": {"x": 1}, "policy": {"editable": ["x"]}},
            )
        ).json()
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        url = f"/v1/requests/{created['id']}/decisions"
        for body, status in (
            (b'{"decision": "approve", "modified_args": {"x": NaN}}', 400),
            (b'{"decision": "approve", "modified_args": {"x": "\\ud83d"}}', 422),
            (b'{"decision": "reject", "reason": "\\udead"}', 422),
            (b'{"approved": false}', 422),
        ):
            response = await admin.post(
                url, content=body, headers={"Content-Type": "application/json"}
            )
            is_problem(response, status)
        assert (await admin.get(f"/v1/requests/{created['id']}")).json()["status"] == "pending"


@pytest.mark.parametrize(
    "cursor",
    [
        "czk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",  # s99999999999999999999999: beyond int64
        "cy0x",  # s-1
        "czA",  # s0
        "x" * 500,
        "!!!",
    ],
)
async def test_cursors_that_are_not_ours_are_422(live: Live, cursor: str) -> None:
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        response = await admin.get("/v1/requests", params={"cursor": cursor})
    is_problem(response, 422)


@pytest.mark.parametrize("last", [str(2**63), str(2**64 + 5), "-1", "1e3", "12a"])
async def test_a_last_event_id_beyond_the_store_is_422(live: Live, last: str) -> None:
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        response = await admin.get("/v1/events", headers={"Last-Event-ID": last})
        is_problem(response, 422)
        response = await admin.get("/v1/events", params={"last_event_id": last})
        is_problem(response, 422)


async def test_the_largest_event_id_streams_cleanly(live: Live) -> None:
    async with (
        live.client(live.approver_token("ada", role="admin")) as admin,
        admin.stream("GET", "/v1/events", headers={"Last-Event-ID": str(2**63 - 1)}) as r,
    ):
        assert r.status_code == 200


async def test_the_engine_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    """In process too: an agent's arguments with NaN or a lone surrogate are INVALID, and
    gate.call does not raise."""
    gate = Gate("memory://")
    ran: list[Any] = []

    @gate.tool(policy=Policy())
    async def note(text: str, amount: float = 0) -> str:
        ran.append(text)
        return text

    for args in ('{"text": "a", "amount": NaN}', '{"text": "\\ud800"}', {"text": "\udc00"}):
        outcome = await gate.call("note", args)
        assert outcome.status is CallStatus.INVALID, (args, outcome)
    assert ran == [] and await gate.pending() == []
    await gate.aclose()


async def test_the_service_refuses_unstorable_values(tmp_path: Path) -> None:
    from signoff.errors import InvalidArguments
    from signoff.stores.memory import MemoryStore

    async with ApprovalService(MemoryStore(), sweep=False) as service:
        for bad in ({"args": {"x": float("nan")}}, {"context": {"why": "\ud800"}}):
            with pytest.raises(InvalidArguments):
                await service.submit(refund_spec(**bad), AGENT)


async def test_the_oidc_callback_never_shows_the_links_text(tmp_path: Path) -> None:
    running: RunningProvider = await start_provider()
    config = parse_config(
        {
            "auth": {
                "oidc_discovery_url": running.provider.discovery_url,
                "oidc_client_id": CLIENT_ID,
                "oidc_client_secret": CLIENT_SECRET,
            }
        }
    )
    info, server, task = await start_live(tmp_path, config)
    try:
        async with httpx.AsyncClient(base_url=info.url) as browser:
            page = await browser.get(
                "/auth/callback",
                params={
                    "error": "access_denied",
                    "error_description": "Your account is locked. Call +1 555 0100 now",
                },
            )
            unknown = await browser.get(
                "/auth/callback", params={"error": "Call <b>+1 555 0100</b>"}
            )
        assert "555" not in page.text and "access was denied" in page.text
        assert "555" not in unknown.text and "did not say why" in unknown.text
    finally:
        await stop_live(server, task)
        await running.stop()


async def test_pending_is_not_cut_at_a_page(tmp_path: Path) -> None:
    gate = Gate("memory://")

    @gate.tool(policy=Policy())
    async def note(text: str) -> str:
        return text

    from signoff import Run

    for i in range(230):
        asked = await gate.call(
            "note", {"text": str(i)}, run=Run(run_id="r"), tool_call_id=f"t{i}", wait=False
        )
        assert asked.status is CallStatus.PENDING
    assert len(await gate.pending()) == 230
    await gate.aclose()


async def test_a_store_that_cannot_be_opened_is_a_call_that_did_not_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    gate = Gate(f"sqlite:///{blocker}/signoff.db")

    @gate.tool(policy=Policy())
    async def note(text: str) -> str:
        return text

    outcome = await gate.call("note", {"text": "x"})
    assert outcome.status is CallStatus.UNAVAILABLE
    assert "cannot open" in (outcome.message or "")


def test_the_database_file_is_private(tmp_path: Path) -> None:
    """The SQLite file, its WAL and shared-memory files (as they are while the store is
    open) and a new data folder are the owner's alone, whatever the umask."""
    import subprocess
    import sys

    db = tmp_path / "data" / "signoff.db"
    script = f"""
import asyncio, datetime, os, stat
from signoff.stores.sqlite import SqliteStore
os.umask(0o022)
async def main():
    store = SqliteStore({str(db)!r})
    await store.start()
    await store.spend("k", datetime.datetime.now(datetime.UTC))
    folder = {str(db.parent)!r}
    for name in sorted(os.listdir(folder)) + ["."]:
        print(name, oct(stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode)))
    await store.aclose()
asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    modes = dict(line.split() for line in out.splitlines())
    assert modes == {
        "signoff.db": "0o600",
        "signoff.db-wal": "0o600",
        "signoff.db-shm": "0o600",
        ".": "0o700",
    }


async def test_numbers_an_agent_sends_are_kept_exactly(live: Live) -> None:
    """The fast JSON reader never rounds what it cannot hold: an integer past 64 bits, and a
    float written with many digits, are stored as the agent wrote them (and digested so)."""
    body = (
        b'{"tool": "t", "args": {"big": 123456789012345678901234567890, '
        b'"negative": -18446744073709551617, "fine": 0.1000000000000000055511151231257827}}'
    )
    async with live.client(live.agent_token()) as agent:
        response = await agent.post(
            "/v1/requests", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 201, response.text
    stored = await live.service.store.get(response.json()["id"])  # the row, not the answer
    assert stored is not None
    assert stored.args["big"] == 123456789012345678901234567890
    assert stored.args["negative"] == -18446744073709551617
    assert stored.args["fine"] == 0.1
