"""End to end: ``signoff mcp-proxy`` as its own process, between a real MCP client and a real
upstream MCP server process, on stdio and on streamable HTTP, with approvals kept in the
embedded store or on a ``signoff serve``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from signoff import Gate, Principal
from tests.acceptance.conftest import Served
from tests.helpers.mcp_agent import proxy_parameters
from tests.server.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = Principal(sub="paul", role="publisher")
CONFIG = """
[[tools]]
name = "read_file"
when = false

[[tools]]
name = "delete_file"
min_role = "publisher"
editable = ["path"]
"""


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.db = f"sqlite:///{tmp_path}/signoff.db"
        self.config = tmp_path / "policy.toml"
        self.config.write_text(CONFIG)
        self.log = tmp_path / "exec.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MCP_EXEC_LOG": str(self.log),
            "AGENT_DB": str(tmp_path / "signoff.db"),
            "SIGNOFF_TEST_CONFIG": str(self.config),
        }

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    s = Setup(tmp_path)
    # the proxy started by proxy_parameters() reads these from this process's environment
    monkeypatch.setenv("PYTHONPATH", s.env["PYTHONPATH"])
    monkeypatch.setenv("MCP_EXEC_LOG", s.env["MCP_EXEC_LOG"])
    return s


async def first_pending(gate: Gate, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await gate.pending()):
            await asyncio.sleep(0.05)
    return found[0]


def text(result: CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


async def test_on_stdio_with_the_embedded_store(setup: Setup) -> None:
    flags = ["--db", setup.db, "--config", str(setup.config), "--agent", "coder"]
    async with Client(proxy_parameters(*flags)) as agent, Gate(setup.db) as gate:
        tools = {t.name for t in (await agent.list_tools()).tools}
        assert tools == {"delete_file", "read_file", "explode"}
        read = await agent.call_tool("read_file", {"path": "/r"})  # the config lets it through
        call = asyncio.create_task(agent.call_tool("delete_file", {"path": "/a"}))
        request = await first_pending(gate)
        assert request.tool == "delete_file" and request.run.agent_id == "coder"
        await gate.approve(request.id, by=PUBLISHER, modified_args={"path": "/b"})
        result = await call
    assert text(read) == "contents of /r"
    assert not result.is_error and "deleted /b" in text(result)
    assert setup.ran() == ["read_file /r", "delete_file /b"]


async def test_on_streamable_http_both_ways(setup: Setup) -> None:
    up_port, proxy_port = free_port(), free_port()
    upstream = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.helpers.mcp_upstream", "--http", str(up_port),
        env=setup.env, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    processes = [upstream]
    try:
        # the proxy reaches its upstream as it starts and exits if it cannot (a slow machine
        # once started the upstream too late), so it starts once the upstream listens
        await until_listening(up_port, upstream)
        proxy = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "signoff", "mcp-proxy", "--transport", "http",
            "--port", str(proxy_port), "--db", setup.db, "--config", str(setup.config),
            "--upstream", f"http://127.0.0.1:{up_port}/mcp",
            env=setup.env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        processes.append(proxy)
        await until_listening(proxy_port, proxy)
        async with Client(f"http://127.0.0.1:{proxy_port}/mcp") as agent, Gate(setup.db) as gate:
            call = asyncio.create_task(agent.call_tool("delete_file", {"path": "/etc"}))
            request = await first_pending(gate)
            await gate.reject(request.id, by=PUBLISHER, reason="not /etc")
            result = await call
        assert result.is_error
        assert json.loads(text(result))["message"] == "not /etc" and setup.ran() == []
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
            await process.wait()


async def test_with_approvals_on_a_signoff_server(setup: Setup, served: Served) -> None:
    agent_token = served.token("--agent", "files-bot")
    publisher = served.token("--sub", "paul", "--role", "publisher")
    flags = ["--url", served.url, "--token", agent_token, "--config", str(setup.config)]
    async with Client(proxy_parameters(*flags)) as agent:
        call = asyncio.create_task(agent.call_tool("delete_file", {"path": "/a"}))
        [request] = await asyncio.to_thread(served.pending, publisher)
        assert request["requested_by"] == "files-bot"
        approved = await asyncio.to_thread(
            served.signoff, "approve", request["id"], "--set", "path=/tmp/a", token=publisher
        )
        assert approved.returncode == 0, approved.stderr
        result = await call
    assert "deleted /tmp/a" in text(result) and setup.ran() == ["delete_file /tmp/a"]
    shown = served.signoff("show", request["id"], "--json", token=publisher, check=True)
    assert json.loads(shown.stdout)["outcome"]["status"] == "succeeded"


async def test_sigkill_while_waiting_then_a_new_agent_finishes_the_call(setup: Setup) -> None:
    """The agent process (with its proxy and upstream) is killed while the call waits; the
    call is approved meanwhile; a new agent process makes the same call: it finds the same
    request, and the upstream tool runs exactly once."""
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.helpers.mcp_agent", "/a",
        env=setup.env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with Gate(setup.db) as gate:
        request = await first_pending(gate)
        os.killpg(first.pid, signal.SIGKILL)
        await first.wait()
        assert setup.ran() == []
        await gate.approve(request.id, by=PUBLISHER)
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.helpers.mcp_agent", "/a",
            env=setup.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 0, err.decode()
        result = CallToolResult.model_validate(json.loads(out))
        assert not result.is_error and text(result) == "deleted /a"
        assert setup.ran() == ["delete_file /a"]  # exactly once
        assert await gate.pending() == []  # no second request
        done = await gate.get(request.id)
        assert done.outcome is not None and done.outcome.status == "succeeded"


def test_bad_input_is_one_line_on_stderr(setup: Setup) -> None:
    cases = [
        ([], "no upstream MCP server"),
        (["--db", setup.db, "--upstream", "http://127.0.0.1:9/mcp"], "could not be reached"),
        (["--db", setup.db, "--", "/nonexistent/mcp-server"], "could not be reached"),
        (["--transport", "ws", "--", "x"], "--transport must be stdio or http"),
        (["--config", "/nonexistent.toml", "--", "x"], "config file not found"),
        (["--url", "http://127.0.0.1:9", "--", "x"], "--url needs the agent's token"),
    ]
    for args, fragment in cases:
        result = subprocess.run(
            [sys.executable, "-m", "signoff", "mcp-proxy", *args],
            env={k: v for k, v in setup.env.items() if k != "SIGNOFF_TOKEN"},
            cwd=setup.log.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and result.stdout == ""
        assert len(lines) == 1 and lines[0].startswith("signoff: "), lines
        assert fragment in lines[0], lines[0]


async def until_listening(
    port: int, process: asyncio.subprocess.Process, timeout: float = 60
) -> None:
    async with asyncio.timeout(timeout), httpx.AsyncClient() as http:
        while True:
            try:
                await http.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                return
            except httpx.TransportError:
                if process.returncode is not None:
                    stderr = await process.stderr.read() if process.stderr else b""
                    pytest.fail(f"exited with {process.returncode}: {stderr.decode()}")
                await asyncio.sleep(0.05)
