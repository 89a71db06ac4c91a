"""Continue a durable run in this process: from its id, with the client, gate and tools it
runs with, or an app (``"module:factory"``) that builds them.

The code imported comes only from the caller (``app=``, ``signoff runs resume --app``, or
the operator's ``[runs] apps``): a run's recorded ``app`` was written by its agent, so it is
a hint, never imported unless it is on that list.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.errors import ConfigError, NotFound
from signoff.gate import Gate
from signoff.integrations._loop import AgentResult, AnyTool
from signoff.models import Run

__all__ = ["AgentApp", "load_app", "resume"]


@dataclass
class AgentApp:
    """What ``app="module:factory"`` gives: everything a run needs but its transcript."""

    client: Any
    gate: Any
    tools: Sequence[Any]


async def load_app(spec: str) -> AgentApp:
    """Import ``module:attribute`` and call it (sync or async) unless it is an AgentApp."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"app {spec!r}: write it as 'package.module:factory'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"app {spec!r}: {exc}") from exc
    if callable(target) and not isinstance(target, AgentApp):
        target = target()
        if inspect.isawaitable(target):
            target = await target
    if not isinstance(target, AgentApp):
        raise ConfigError(f"app {spec!r} gave {type(target).__name__}, not an AgentApp")
    return target


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
    (``"module:factory"`` returning an :class:`AgentApp`). The code imported
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
    record = await gate.approvals.get_run(run_id, agent_id)
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
