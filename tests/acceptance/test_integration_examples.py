"""The examples in docs/integrations.md, run as they are: every block marked
``<!-- file: NAME -->`` is written to NAME in a fresh folder, then the agent scripts run
against a real ``signoff serve`` and a local server speaking the Anthropic Messages API
(the real Claude Agent SDK drives its bundled Claude Code CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, Served
from tests.integrations.fake_providers import FakeModel, ToolUse, say, use

pytestmark = pytest.mark.slow

DOC = ROOT / "docs" / "integrations.md"
BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", re.DOTALL)


def write_examples(folder: Path) -> list[str]:
    names = []
    for name, body in BLOCK.findall(DOC.read_text()):
        (folder / name).write_text(body + "\n")
        names.append(name)
    return names


def test_the_examples_are_found() -> None:
    names = [name for name, _ in BLOCK.findall(DOC.read_text())]
    assert {"claude_agent.py", "files_server.py", "policy.toml", "mcp_agent.py"} <= set(names)


async def run_example(
    served: Served, model: FakeModel, folder: Path, script: str, approve: list[str]
) -> tuple[str, dict[str, object]]:
    """Run ``script`` in ``folder``; approve its one request (``--set`` pairs in
    ``approve``) as a publisher; its output and the request as decided."""
    write_examples(folder)
    home = folder / ".home"
    home.mkdir()
    env = {
        **served.env,
        "SIGNOFF_URL": served.url,
        "AGENT_TOKEN": served.token("--agent", "coder"),
        "ANTHROPIC_BASE_URL": model.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    agent = await asyncio.create_subprocess_exec(
        sys.executable, script, cwd=folder, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    publisher = served.token("--sub", "alice", "--role", "publisher")
    try:
        [request] = await asyncio.to_thread(served.pending, publisher, 1, 60)
        sets = [arg for pair in approve for arg in ("--set", pair)]
        await asyncio.to_thread(
            served.signoff, "approve", request["id"], *sets, token=publisher, check=True
        )
        out, err = await asyncio.wait_for(agent.communicate(), 60)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
    assert agent.returncode == 0, err.decode()
    shown = served.signoff("show", request["id"], "--json", token=publisher, check=True)
    decided: dict[str, object] = json.loads(shown.stdout)
    return out.decode(), decided


async def test_the_claude_agent_example(served: Served, tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "app.o").write_text("x")
    (tmp_path / "keep").mkdir()
    remove = ToolUse("Bash", {"command": "rm -r keep", "description": "Remove a folder"})
    async with FakeModel(use(remove), say("Removed the build folder.")) as model:
        # the approver corrects the command before it runs
        out, request = await run_example(
            served, model, tmp_path, "claude_agent.py", ['command="rm -r build"']
        )
    assert out.strip() == "Removed the build folder."
    assert not (tmp_path / "build").exists() and (tmp_path / "keep").exists()
    assert request["reason"] == "Run 'rm -r keep'"
    assert request["outcome"]["status"] == "succeeded"  # type: ignore[index]


async def test_the_mcp_proxy_example(served: Served, tmp_path: Path) -> None:
    old = tmp_path / "old.log"
    old.write_text("x")
    delete = ToolUse("mcp__files__delete_file", {"path": str(old)})
    async with FakeModel(use(delete), say("Deleted old.log.")) as model:
        out, request = await run_example(served, model, tmp_path, "mcp_agent.py", [])
    assert out.strip() == "Deleted old.log." and not old.exists()
    assert request["tool"] == "delete_file" and request["reason"] == f"Delete {old}"
    assert request["tool_call_id"] == "toolu_1_0"  # Claude Code's id, from _meta
    assert request["outcome"]["status"] == "succeeded"  # type: ignore[index]
