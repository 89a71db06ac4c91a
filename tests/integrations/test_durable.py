"""Durable runs: checkpointed after every step, resumed in another process after a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import anthropic
import pytest

from signoff import CallStatus, Gate, Principal, Run
from signoff.approvals import LocalApprovals
from signoff.integrations.anthropic import run_agent
from signoff.integrations.resume import resume
from signoff.models import Status
from signoff.service import ApprovalService
from signoff.stores.base import ListQuery, RunQuery
from signoff.stores.sqlite import SqliteStore
from tests.integrations.fake_providers import FakeModel, Shop, ToolUse, say, use, wait_for_pending

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Principal(sub="ada", role="admin")
PROMPT = [{"role": "user", "content": "Refund ORD-1: it arrived broken."}]


async def test_a_run_is_checkpointed_and_continued_after_its_process_goes(
    model: FakeModel, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/agent.db"
    refund = ToolUse("issue_refund", {"order_id": "ORD-1", "amount": 250.0})
    model.play(use(refund), say("Refunded."))
    run = Run(agent_id="support", run_id="run-7")

    first = Gate(url)
    shop = Shop(first)
    async with anthropic.AsyncAnthropic(api_key="t", base_url=model.url, max_retries=0) as client:
        task = asyncio.create_task(
            run_agent(client, first, model="m", messages=PROMPT, tools=shop.tools, run=run)
        )
        await wait_for_pending(first, 1)
        task.cancel()  # the process "dies" while the call waits
        with pytest.raises(asyncio.CancelledError):
            await task
    record = await first.approvals.get_run("run-7", "support")
    assert record is not None and record.status == "running"
    assert record.transcript[-1]["role"] == "assistant"  # checkpointed: the unanswered call
    [pending] = await first.pending()
    await first.approve(pending.id, by=ADMIN)
    await first.aclose()

    second = Gate(url)
    shop2 = Shop(second)
    async with anthropic.AsyncAnthropic(api_key="t", base_url=model.url, max_retries=0) as client:
        result = await resume("run-7", client=client, gate=second, tools=shop2.tools)
        assert result.final_text == "Refunded."
        assert [o.status for o in result.outcomes] == [CallStatus.EXECUTED]
        assert shop2.ran == [("issue_refund", {"order_id": "ORD-1", "amount": 250.0})]
        # one approval request for the call, however many processes asked
        page = await second.approvals.service.list_requests(ListQuery(), ADMIN)  # type: ignore[attr-defined]
        assert len(page.items) == 1
        done = await second.approvals.get_run("run-7", "support")
        assert done is not None and done.status == "finished" and done.final_text == "Refunded."
        # a finished run is not run again: no model call, no tool call
        calls = len(model.bodies)
        again = await run_agent(
            client, second, model="m", messages=PROMPT, tools=shop2.tools, run=run
        )
        assert again.final_text == "Refunded." and len(model.bodies) == calls
        assert shop2.ran == [("issue_refund", {"order_id": "ORD-1", "amount": 250.0})]
    await second.aclose()


async def test_a_run_without_run_id_is_not_stored(model: FakeModel) -> None:
    model.play(say("Hello."))
    gate = Gate("memory://")
    shop = Shop(gate)
    async with anthropic.AsyncAnthropic(api_key="t", base_url=model.url, max_retries=0) as client:
        result = await run_agent(client, gate, model="m", messages=PROMPT, tools=shop.tools)
    assert result.final_text == "Hello."
    approvals = gate.approvals
    assert isinstance(approvals, LocalApprovals)
    assert await approvals.service.store.list_runs(RunQuery()) == []
    await gate.aclose()


@pytest.mark.slow
async def test_sigkill_while_waiting_then_resume_in_a_new_process(
    model: FakeModel, tmp_path: Path
) -> None:
    """The issue's crash test: kill -9 the agent while its call waits; approve; resume with
    `signoff runs resume` in a new process; the tool ran exactly once; the answer arrives."""
    db, log = tmp_path / "agent.db", tmp_path / "exec.log"
    model.play(
        use(ToolUse("issue_refund", {"order_id": "ORD-1", "amount": 250.0})),
        say("The refund rf_ord-1 is issued."),
    )
    env = {
        **os.environ,
        "AGENT_DB": str(db),
        "EXEC_LOG": str(log),
        "FAKE_MODEL_URL": model.url,
        "PYTHONPATH": str(ROOT),
    }
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.durable_agent",
        "run-42",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with ApprovalService(SqliteStore(db), sweep=False) as service:
        for _ in range(600):
            pending = await service.pending(ADMIN)
            if pending:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the agent's call never reached the gate")
        agent.send_signal(signal.SIGKILL)
        await agent.wait()
        assert agent.returncode == -signal.SIGKILL
        assert not log.exists()  # nothing ran yet
        [request] = pending
        await service.decide(request.id, ADMIN, "approve")

    out = await resume_in_a_new_process("run-42", db, tmp_path, env)
    assert "The refund rf_ord-1 is issued." in out
    assert log.read_text().splitlines() == ["ORD-1 250.0"]  # exactly once
    # the model was told the result of the one run of the tool
    last = model.bodies[-1]["messages"][-1]
    [result] = last["content"]
    assert result["type"] == "tool_result" and '"refund_id": "rf_ord-1"' in result["content"]
    async with ApprovalService(SqliteStore(db), sweep=False) as service:
        requests = (await service.list_requests(ListQuery(), ADMIN)).items
        assert len(requests) == 1 and requests[0].status is Status.APPROVED
        assert requests[0].outcome is not None and requests[0].outcome.status == "succeeded"
        run = await service.runs.get("run-42", ADMIN)
        assert run.status == "finished"
        assert (await service.verify_audit(ADMIN)).ok
    # resuming a finished run again changes nothing
    again = await resume_in_a_new_process("run-42", db, tmp_path, env)
    assert "The refund rf_ord-1 is issued." in again
    assert log.read_text().splitlines() == ["ORD-1 250.0"]


async def resume_in_a_new_process(run_id: str, db: Path, cwd: Path, env: dict[str, str]) -> str:
    """``signoff runs resume`` in a subprocess; its output (it must succeed). The run's
    recorded app is imported because the operator's config lists it."""
    config = cwd / "signoff.toml"
    config.write_text('[runs]\napps = ["tests.helpers.durable_agent:build"]\n')
    resumed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signoff",
        "runs",
        "resume",
        run_id,
        "--db",
        f"sqlite:///{db}",
        "--config",
        str(config),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(resumed.communicate(), 60)
    assert resumed.returncode == 0, err.decode()
    return out.decode()
