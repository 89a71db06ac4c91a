"""Durable runs for the agent loops: the tool loop, checkpointed after every step.

A run with a ``run_id`` is durable. If its process dies while a call waits for a human,
another process picks the run up from its last checkpoint (:mod:`signoff.integrations.resume`,
or the same ``run_agent`` call again): the transcript ends with the unanswered tool calls,
which are gated again under the provider's own ids, so the gate finds the same approval
requests (idempotency on run and tool call id), learns their decisions, and runs each
approved tool at most once. A finished run is not run again: its stored answer is returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from signoff._util import jsonable, now_utc
from signoff.errors import ConfigError
from signoff.gate import Gate
from signoff.integrations._loop import AgentResult, AnyTool, Provider, Transcript, run_tool_loop
from signoff.models import ProviderKind, Run, RunRecord


async def run_durably(
    kind: ProviderKind,
    provider: Provider[Any],
    gate: Gate,
    tools: Sequence[AnyTool],
    transcript: Transcript,
    *,
    run: Run | None,
    max_turns: int,
    model: str,
    create_kwargs: Mapping[str, Any],
    app: str | None = None,
) -> AgentResult:
    """The tool loop, checkpointed when ``run`` has a ``run_id``."""
    if run is None or not run.run_id:
        return await run_tool_loop(provider, gate, tools, transcript, run=run, max_turns=max_turns)
    await gate.start()
    record = await gate.approvals.get_run(run.run_id, run.agent_id)
    if record is not None and record.status == "finished":
        # this run is done: its answer stands, nothing is called or run again
        return AgentResult(record.transcript, record.final_text or "", [], record.turns, True)
    if record is None:
        now = now_utc()
        record = RunRecord(
            run_id=run.run_id,
            agent_id=run.agent_id,
            provider=kind,
            model=model,
            max_turns=max_turns,
            create_kwargs=jsonable(dict(create_kwargs)),
            tools=[tool.name for tool in tools],
            app=app,
            transcript=transcript,
            created_at=now,
            updated_at=now,
        )
        record = await gate.approvals.save_run(record)
    else:
        if record.provider != kind:
            raise ConfigError(f"run {run.run_id} was started with {record.provider}, not {kind}")
        transcript = [dict(item) for item in record.transcript]
    saved = record

    async def checkpoint(current: Transcript) -> None:
        nonlocal saved
        saved = await gate.approvals.save_run(saved.model_copy(update={"transcript": current}))

    remaining = max(1, record.max_turns - record.turns)
    result = await run_tool_loop(
        provider, gate, tools, transcript, run=run, max_turns=remaining, on_step=checkpoint
    )
    await gate.approvals.save_run(
        saved.model_copy(
            update={
                "transcript": result.messages,
                "turns": record.turns + result.turns,
                "status": "finished" if result.finished else "running",
                "final_text": result.final_text,
            }
        )
    )
    return result
