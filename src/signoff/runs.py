"""Durable agent runs: a run's transcript, checkpointed in the store after every step.

A run with a ``run_id`` is durable. If its process dies while a call waits for a human,
another process picks the run up from its last checkpoint (``resume``, or the same
``run_agent`` call again): the transcript ends with the unanswered tool calls, which are
gated again under the provider's own ids, so the gate finds the same approval requests
(idempotency on run and tool call id), learns their decisions, and runs each approved tool
at most once. A finished run is not run again: its stored answer is returned.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signoff.errors import ConfigError
from signoff.types import JSONObject

ProviderKind = Literal["anthropic", "openai-responses", "openai-chat"]


class RunRecord(BaseModel):
    """What it takes to continue a run in another process."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=500)
    #: the agent that owns the run (the run's agent_id, or a remote agent's token sub)
    owner: str = ""
    agent_id: str = "agent"
    status: Literal["running", "finished"] = "running"
    provider: ProviderKind
    model: str
    max_turns: int = Field(default=10, ge=1)
    create_kwargs: JSONObject = Field(default_factory=dict)
    #: the names of the tools offered to the model
    tools: list[str] = Field(default_factory=list)
    #: "module:factory": how a new process rebuilds the client, gate and tools
    app: str | None = None
    transcript: list[JSONObject] = Field(default_factory=list)
    final_text: str | None = None
    turns: int = 0
    created_at: datetime
    updated_at: datetime


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
