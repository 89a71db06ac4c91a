"""The crash test for each framework adapter: kill -9 the agent while its refund waits for an
approver; approve; finish the run in a new process from the framework's own checkpoint.
One approval request, the tool run exactly once, the answer delivered; resuming the finished
run again runs nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signoff import Gate, Status

from .fake_providers import PUBLISHER, FakeModel, ToolUse, say, use

ROOT = Path(__file__).resolve().parents[2]
ANSWER = "The refund is issued."


@pytest.fixture
async def fake_model() -> AsyncIterator[FakeModel]:
    # the Agents SDK's model: the tool call, then the answer (twice: the run is resumed twice)
    refund = ToolUse("issue_refund", {"order_id": "ORD-1", "amount": 250.0})
    async with FakeModel(use(refund), say(ANSWER), say(ANSWER)) as model:
        yield model


async def agent(framework: str, step: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.framework_agent",
        framework,
        step,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(framework: str, env: dict[str, str]) -> str:
    process = await agent(framework, "resume", env)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["langgraph", "pydantic-ai", "openai-agents"])
async def test_sigkill_while_waiting_then_finish_in_a_new_process(
    framework: str, fake_model: FakeModel, tmp_path: Path
) -> None:
    log = tmp_path / "exec.log"
    env = {
        **os.environ,
        "AGENT_DB": str(tmp_path / "agent.db"),
        "EXEC_LOG": str(log),
        "CHECKPOINT": str(tmp_path / "checkpoint"),
        "FAKE_MODEL_URL": fake_model.url,
        "PYTHONPATH": str(ROOT),
    }
    gate = Gate(f"sqlite:///{tmp_path / 'agent.db'}")
    checkpoint = tmp_path / "checkpoint"
    first = await agent(framework, "start", env)
    try:
        async with asyncio.timeout(60):
            # the process waits once its request is pending and its framework's own
            # checkpoint is written (OpenAI Agents writes its paused run just after)
            while not (pending := await gate.pending()) or not checkpoint.exists():
                if first.returncode is not None:
                    _, err = await first.communicate()
                    raise AssertionError(err.decode())
                await asyncio.sleep(0.05)
    finally:
        if first.returncode is None:
            first.send_signal(signal.SIGKILL)
            await first.wait()
    assert first.returncode == -signal.SIGKILL
    assert not log.exists()  # nothing ran yet
    [request] = pending
    assert request.tool_call_id in ("tc-1", "call_1_0") and request.run.run_id == "thread-42"
    await gate.approve(request.id, by=PUBLISHER)

    assert ANSWER in await finish(framework, env)
    assert log.read_text().splitlines() == ["ORD-1 250.0"]  # exactly once
    done = await gate.get(request.id)
    assert done.status is Status.APPROVED
    assert done.outcome is not None and done.outcome.status == "succeeded"
    assert await gate.pending() == []  # no second request was made

    # finishing the finished run again (a retried job) runs nothing
    assert ANSWER in await finish(framework, env)
    assert log.read_text().splitlines() == ["ORD-1 250.0"]
    assert await gate.pending() == []
    await gate.aclose()
