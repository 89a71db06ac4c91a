"""Durable runs for the agent loops (see :mod:`signoff.runs`).

A run whose :class:`~signoff.Run` has a ``run_id`` is checkpointed in the gate's store after
every step. Calling the same ``run_agent`` again with that ``run_id`` (in this process or
another) continues from the checkpoint; :func:`resume` does the same from the run's id
alone, given the client, gate and tools (or the ``app`` the run was started with).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from signoff._util import jsonable, now_utc
from signoff.errors import ConfigError, NotFound
from signoff.gate import Gate
from signoff.integrations._loop import AgentResult, AnyTool, Provider, Transcript, run_tool_loop
from signoff.models import Run
from signoff.runs import ProviderKind, RunRecord, load_app


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
    record = await gate.backend.get_run(run.run_id, run.agent_id)
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
        record = await gate.backend.save_run(record)
    else:
        if record.provider != kind:
            raise ConfigError(f"run {run.run_id} was started with {record.provider}, not {kind}")
        transcript = [dict(item) for item in record.transcript]
    saved = record

    async def checkpoint(current: Transcript) -> None:
        nonlocal saved
        saved = await gate.backend.save_run(saved.model_copy(update={"transcript": current}))

    remaining = max(1, record.max_turns - record.turns)
    result = await run_tool_loop(
        provider, gate, tools, transcript, run=run, max_turns=remaining, on_step=checkpoint
    )
    await gate.backend.save_run(
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


async def resume(
    run_id: str,
    *,
    client: Any = None,
    gate: Gate | None = None,
    tools: Sequence[AnyTool] | None = None,
    app: str | None = None,
    agent_id: str | None = None,
    allowed_apps: Collection[str] = (),
) -> AgentResult:
    """Continue a run from its last checkpoint, in this process.

    Give the ``client``, ``gate`` and ``tools`` the run was started with, or an ``app``
    (``"module:factory"`` returning an :class:`~signoff.runs.AgentApp`). The code imported
    comes only from the caller: the ``app`` an agent recorded with the run is a hint, used
    only when it is one of ``allowed_apps`` (the operator's ``[runs] apps``). ``agent_id``
    names the run's agent where several agents used the same run id.
    """
    if app is not None:
        built = await load_app(app)
        client, gate, tools = built.client, built.gate, built.tools
    if gate is None:
        raise ConfigError("resume needs the gate (with client and tools) or an app")
    await gate.start()
    record = await gate.backend.get_run(run_id, agent_id)
    if record is None:
        raise NotFound(f"no run {run_id}")
    if client is None or tools is None:
        if record.app is None or record.app not in allowed_apps:
            raise ConfigError(
                f"run {run_id} records the app {record.app!r}, which is not an allowed app: "
                "pass the client and tools, or app='module:factory'"
            )
        built = await load_app(record.app)
        client, gate, tools = built.client, built.gate, built.tools
    by_name = {tool.name: tool for tool in tools}
    missing = [name for name in record.tools if name not in by_name]
    if missing:
        raise ConfigError(f"run {run_id} used tools this process does not have: {missing}")
    offered = [by_name[name] for name in record.tools]
    common: dict[str, Any] = {
        **record.create_kwargs,
        "model": record.model,
        "tools": offered,
        "run": Run(agent_id=record.agent_id, run_id=record.run_id),
        "max_turns": record.max_turns,
        "app": record.app,
    }
    if record.provider == "anthropic":
        from signoff.integrations import anthropic

        return await anthropic.run_agent(client, gate, messages=record.transcript, **common)
    from signoff.integrations import openai

    if record.provider == "openai-responses":
        return await openai.run_agent(client, gate, input=record.transcript, **common)
    return await openai.run_chat_agent(client, gate, messages=record.transcript, **common)
