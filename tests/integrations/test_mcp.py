"""The MCP gateway in process: a real MCP client talks to the gateway's MCP server, which
talks to a real upstream MCP server (built with the ``mcp`` package)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, RequestParamsMeta, TextContent

from signoff import ConfigError, Gate, MissingDependency, Policy, Principal, Run, Status
from signoff.integrations.mcp import McpGateway, Upstream, default_run_id
from signoff.testing import Approve, Reject, ScriptedApprover
from tests.helpers.mcp_upstream import build

PUBLISHER = Principal(sub="paul", role="publisher")
RUN = Run(agent_id="coder", run_id="mcp-run")
CONFIG = """
[[tools]]
name = "read_file"
when = false

[[tools]]
name = "delete_file"
min_role = "publisher"
editable = ["path"]
reason = "Delete {args.path}"
reject_message = "Deletion was not approved."
"""


class Rig:
    """The upstream server, the gate, the gateway and an agent's client on it."""

    def __init__(self, tmp_path: Path, gate: Gate) -> None:
        self.log = tmp_path / "exec.log"
        self.upstream: MCPServer = build(str(self.log))
        self.gate = gate

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(CONFIG)
    return str(path)


@pytest.fixture
async def rig(tmp_path: Path, config_file: str) -> AsyncIterator[Rig]:
    gate = Gate("memory://", config=config_file)
    yield Rig(tmp_path, gate)
    await gate.aclose()


@contextlib.asynccontextmanager
async def connect(rig: Rig, **gateway: Any) -> AsyncIterator[Client]:
    """An agent's client on a gateway in front of the rig's upstream server (anyio's task
    groups inside must be entered and left in one task: so a context, not a fixture)."""
    async with Client(rig.upstream) as upstream:
        proxy = McpGateway(rig.gate, upstream, run=RUN, **gateway)
        async with Client(proxy.server()) as agent:
            yield agent


def meta(items: dict[str, str]) -> RequestParamsMeta:
    """A request's ``_meta`` (an open map; mypy does not know TypedDict's extra items)."""
    return cast(RequestParamsMeta, items)


def told(result: CallToolResult) -> Any:
    [block] = result.content
    assert isinstance(block, TextContent)
    return json.loads(block.text)


async def pending_soon(gate: Gate, count: int = 1) -> list[Any]:
    async with asyncio.timeout(10):
        while len(found := await gate.pending()) < count:
            await asyncio.sleep(0.01)
    return found


async def test_the_upstream_tools_are_listed_as_they_are(rig: Rig) -> None:
    async with connect(rig) as agent:
        async with Client(rig.upstream) as direct:
            expected = (await direct.list_tools()).tools
        listed = (await agent.list_tools()).tools
        assert [t.model_dump(by_alias=True) for t in listed] == [
            t.model_dump(by_alias=True) for t in expected
        ]
        delete = next(t for t in listed if t.name == "delete_file")
        assert delete.annotations is not None and delete.annotations.destructive_hint is True
        assert delete.meta == {"example.com/owner": "tests"}
        assert set(rig.gate.tools) == {"delete_file", "read_file", "explode"}


async def test_an_approved_call_goes_upstream_once(rig: Rig) -> None:
    async with connect(rig) as agent:
        async with ScriptedApprover(rig.gate, lambda r: Approve(), by=PUBLISHER) as approver:
            result = await agent.call_tool("delete_file", {"path": "/tmp/a"})
        assert not result.is_error
        assert result.structured_content == {"result": "deleted /tmp/a"}
        assert rig.ran() == ["delete_file /tmp/a"]
        [(request_id, _)] = approver.decided
        request = await rig.gate.get(request_id)
        assert request.status is Status.APPROVED and request.reason == "Delete /tmp/a"
        assert request.outcome is not None and request.outcome.status == "succeeded"
        assert request.outcome.detail["structuredContent"] == {"result": "deleted /tmp/a"}


async def test_an_edited_call_runs_with_the_edited_arguments_once(rig: Rig) -> None:
    async with connect(rig) as agent:
        edit = Approve(modified_args={"path": "/tmp/safe"})
        async with ScriptedApprover(rig.gate, lambda r: edit, by=PUBLISHER):
            result = await agent.call_tool("delete_file", {"path": "/"})
        assert rig.ran() == ["delete_file /tmp/safe"]
        assert not result.is_error
        first, note = result.content
        assert isinstance(first, TextContent) and first.text == "deleted /tmp/safe"
        assert isinstance(note, TextContent)
        assert json.loads(note.text)["approval"]["modified_by_approver"] == {
            "path": {"proposed": "/", "approved": "/tmp/safe"}
        }


async def test_a_rejected_call_tells_the_model_why(rig: Rig) -> None:
    async with connect(rig) as agent:
        async with ScriptedApprover(rig.gate, lambda r: Reject("Not that one."), by=PUBLISHER):
            result = await agent.call_tool("delete_file", {"path": "/etc"})
        assert result.is_error and rig.ran() == []
        assert told(result) == {
            "error": "approval_rejected",
            "message": "Deletion was not approved. Reason: Not that one.",
            "tool": "delete_file",
            "parameters": {"path": "/etc"},
        }


async def test_nobody_deciding_in_time_is_a_refusal(rig: Rig) -> None:
    async with connect(rig, policies={"delete_file": Policy(timeout=0.3)}) as agent:
        result = await agent.call_tool("delete_file", {"path": "/etc"})
        assert result.is_error and told(result)["error"] == "approval_timeout"
        assert told(result)["message"].startswith("Approval request timed out after")
    assert rig.ran() == []


async def test_tools_without_a_policy_ask_and_configured_ones_follow_the_config(rig: Rig) -> None:
    async with connect(rig) as agent:
        read = await agent.call_tool("read_file", {"path": "/a"})
        assert read.structured_content == {"result": "contents of /a"}
        call = asyncio.create_task(agent.call_tool("explode", {"reason": "x"}))
        [request] = await pending_soon(rig.gate)
        assert request.tool == "explode"  # no policy anywhere: it asks; read_file never did
        await rig.gate.reject(request.id, by=PUBLISHER, reason="no")
        assert (await call).is_error and rig.ran() == ["read_file /a"]


async def test_two_calls_at_once_are_decided_apart(rig: Rig) -> None:
    async with connect(rig) as agent:
        first = asyncio.create_task(
            agent.call_tool("delete_file", {"path": "/a"}, meta=meta({"signoff/toolCallId": "c1"}))
        )
        second = asyncio.create_task(
            agent.call_tool("delete_file", {"path": "/b"}, meta=meta({"signoff/toolCallId": "c2"}))
        )
        requests = {r.args["path"]: r for r in await pending_soon(rig.gate, 2)}
        await rig.gate.reject(requests["/a"].id, by=PUBLISHER, reason="keep /a")
        await rig.gate.approve(requests["/b"].id, by=PUBLISHER)
        a, b = await first, await second
        assert a.is_error and "keep /a" in told(a)["message"]
        assert not b.is_error and rig.ran() == ["delete_file /b"]


async def test_a_retried_call_with_its_id_is_not_run_twice(rig: Rig) -> None:
    async with connect(rig) as agent:
        use_id = meta({"claudecode/toolUseId": "toolu_1"})
        async with ScriptedApprover(rig.gate, lambda r: Approve(), by=PUBLISHER) as approver:
            once = await agent.call_tool("delete_file", {"path": "/a"}, meta=use_id)
            again = await agent.call_tool("delete_file", {"path": "/a"}, meta=use_id)
        assert rig.ran() == ["delete_file /a"]
        assert again.content == once.content and not again.is_error
        [(request_id, _)] = approver.decided
        request = await rig.gate.get(request_id)
        assert request.tool_call_id == "toolu_1" and request.run.run_id == "mcp-run"


async def test_the_client_may_name_the_run(rig: Rig) -> None:
    async with connect(rig) as agent:
        call = asyncio.create_task(
            agent.call_tool(
                "delete_file", {"path": "/a"}, meta=meta({"signoff/runId": "session-9"})
            )
        )
        [request] = await pending_soon(rig.gate)
        assert request.run.run_id == "session-9" and request.run.agent_id == "coder"
        await rig.gate.reject(request.id, by=PUBLISHER, reason="no")
        await call


async def test_identical_calls_without_ids_are_asked_about_each_time(rig: Rig) -> None:
    async with connect(rig) as agent:
        async with ScriptedApprover(rig.gate, lambda r: Approve(), by=PUBLISHER) as approver:
            await agent.call_tool("delete_file", {"path": "/a"})
            await agent.call_tool("delete_file", {"path": "/a"})
        assert rig.ran() == ["delete_file /a", "delete_file /a"]
        assert len(approver.decided) == 2


async def test_a_waiting_call_is_found_again_after_the_gateway_restarts(
    tmp_path: Path, config_file: str
) -> None:
    db = f"sqlite:///{tmp_path}/signoff.db"
    first = Rig(tmp_path, Gate(db, config=config_file))
    async with connect(first) as agent:
        waiting = asyncio.create_task(agent.call_tool("delete_file", {"path": "/a"}))
        [request] = await pending_soon(first.gate)
        waiting.cancel()  # the gateway goes away while the call waits
        with pytest.raises(asyncio.CancelledError):
            await waiting
    await first.gate.approve(request.id, by=PUBLISHER)
    await first.gate.aclose()

    second = Rig(tmp_path, Gate(db, config=config_file))
    async with connect(second) as agent:
        result = await agent.call_tool("delete_file", {"path": "/a"})  # the client retries
    assert not result.is_error and second.ran() == ["delete_file /a"]
    again = await second.gate.get(request.id)  # the same request, used once
    assert again.outcome is not None and again.outcome.status == "succeeded"
    assert await second.gate.pending() == []
    await second.gate.aclose()


async def test_with_hold_an_undecided_call_says_so_and_a_later_call_picks_it_up(
    rig: Rig,
) -> None:
    async with connect(rig, hold=0.2) as agent:
        first = await agent.call_tool("delete_file", {"path": "/a"})
        assert first.is_error and told(first)["error"] == "approval_pending"
        assert "Call the tool again" in told(first)["message"] and rig.ran() == []
        [request] = await rig.gate.pending()  # it stays, for a person to decide
        second = asyncio.create_task(agent.call_tool("delete_file", {"path": "/a"}))
        await asyncio.sleep(0.05)
        await rig.gate.approve(request.id, by=PUBLISHER)  # decided while the retry is held
        result = await second
    assert not result.is_error and rig.ran() == ["delete_file /a"]
    assert (await rig.gate.get(request.id)).outcome is not None


async def test_arguments_that_do_not_fit_never_go_upstream(rig: Rig) -> None:
    async with connect(rig) as agent:
        result = await agent.call_tool("delete_file", {"path": 3})
        assert result.is_error and told(result)["error"] == "invalid_tool_call"
        unknown = await agent.call_tool("format_disk", {})
        assert unknown.is_error and "unknown tool 'format_disk'" in told(unknown)["message"]
        assert rig.ran() == [] and await rig.gate.pending() == []


async def test_an_upstream_error_is_passed_on_and_recorded(rig: Rig) -> None:
    async with connect(rig) as agent:
        async with ScriptedApprover(rig.gate, lambda r: Approve(), by=PUBLISHER) as approver:
            result = await agent.call_tool("explode", {"reason": "boom"})
        assert result.is_error and rig.ran() == ["explode boom"]
        [block] = result.content
        assert isinstance(block, TextContent) and "exploded: boom" in block.text
        request = await rig.gate.get(approver.decided[0][0])
        assert request.outcome is not None and request.outcome.status == "failed"


async def test_when_signoff_cannot_be_reached_nothing_goes_upstream(rig: Rig) -> None:
    unreachable = Gate("http://127.0.0.1:9", token="agent-token")
    unreachable_rig = Rig(rig.log.parent, unreachable)
    async with connect(unreachable_rig) as agent:
        result = await agent.call_tool("delete_file", {"path": "/a"})
    assert result.is_error and told(result)["error"] == "approval_unavailable"
    assert unreachable_rig.ran() == []
    await unreachable.aclose()


async def test_legacy_clients_are_served_too(rig: Rig) -> None:
    async with Client(rig.upstream) as upstream:
        proxy = McpGateway(rig.gate, upstream, run=RUN)
        async with Client(proxy.server(), mode="legacy") as agent:
            assert {t.name for t in (await agent.list_tools()).tools} == set(rig.gate.tools)
            result = await agent.call_tool("read_file", {"path": "/x"})
    assert result.structured_content == {"result": "contents of /x"}


def test_an_upstream_is_a_command_or_a_url() -> None:
    with pytest.raises(ConfigError):
        Upstream()
    with pytest.raises(ConfigError):
        Upstream(command=["server"], url="http://127.0.0.1:1/mcp")
    with pytest.raises(ConfigError):
        Upstream(url="file:///etc/passwd")
    a = Upstream(command=["/usr/bin/server", "--api-key", "s3cret"])
    b = Upstream(url="http://user:pw@127.0.0.1:1/mcp?token=x")
    assert a.label == "server" and b.label == "http://127.0.0.1:1/mcp"  # no secrets shown
    assert default_run_id(a) != default_run_id(b)
    assert default_run_id(a) == default_run_id(Upstream(command=list(a.command)))
    assert default_run_id(a) != default_run_id(Upstream(command=["/usr/bin/server"]))


def test_import_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an absent package looks like
    monkeypatch.delitem(sys.modules, "signoff.integrations.mcp")
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module("signoff.integrations.mcp")
    assert caught.value.detail == {"package": "mcp", "extra": "mcp"}
