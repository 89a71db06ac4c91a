"""The framework examples in docs/integrations.md run as they are written.

Each ```python block whose first line is ``# runnable: NAME.py`` is written to a file and run
in a fresh process and folder; the OpenAI Agents SDK's default client is pointed (through
its own environment variables) at the local server that speaks the Responses API.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from .fake_providers import FakeModel, ToolUse, say, use

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"
RUNNABLE = re.compile(r"```python\n# runnable: (\S+)\n(.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    return {name: f"# runnable: {name}\n{code}" for name, code in RUNNABLE.findall(DOC.read_text())}


def test_each_framework_has_a_runnable_example() -> None:
    assert set(examples()) == {
        "langgraph_example.py",
        "pydantic_ai_example.py",
        "openai_agents_example.py",
    }


async def run_example(name: str, tmp_path: Path, env: dict[str, str]) -> list[str]:
    script = tmp_path / name
    script.write_text(examples()[name])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


@pytest.mark.slow
async def test_the_langgraph_example(tmp_path: Path) -> None:
    waiting, resume, tool, agent = await run_example("langgraph_example.py", tmp_path, {})
    assert waiting == "Waiting: Refund 250 for ORD-1"
    assert resume.startswith("Resume: {'decisions': [{'type': 'edit'")
    told = json.loads(tool.removeprefix("Tool: "))
    assert told["result"] == "Refunded 200.0 for ORD-1."
    assert told["approval"]["modified_by_approver"]["amount"] == {"proposed": 250, "approved": 200}
    assert agent == "Agent: The refund is issued."


@pytest.mark.slow
async def test_the_pydantic_ai_example(tmp_path: Path) -> None:
    waiting, agent = await run_example("pydantic_ai_example.py", tmp_path, {})
    assert waiting.startswith("Waiting: apr_")
    told = json.loads(agent.removeprefix("Agent: I was told: "))
    assert told["error"] == "approval_rejected"
    assert told["message"] == (
        "The refund was not approved. Reason: Refunds over 100 need the order's photos."
    )


@pytest.mark.slow
async def test_the_openai_agents_example(tmp_path: Path) -> None:
    refund = ToolUse("issue_refund", {"order_id": "ORD-1", "amount": 250})
    async with FakeModel(use(refund), say("The refund is issued.")) as model:
        env = {
            "OPENAI_BASE_URL": f"{model.url}/v1",
            "OPENAI_API_KEY": "test",
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
        }
        waiting, agent = await run_example("openai_agents_example.py", tmp_path, env)
        assert waiting.startswith("Waiting: ['apr_")
        assert agent == "Agent: The refund is issued."
        [told] = [
            item["output"]
            for item in model.bodies[-1]["input"]
            if item.get("type") == "function_call_output"
        ]
        assert json.loads(told)["result"] == "Refunded 200.0 for ORD-1."
