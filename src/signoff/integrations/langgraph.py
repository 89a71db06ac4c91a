"""LangGraph and langchain: tool calls behind the gate, waiting or through ``interrupt``.

    from langchain.agents import create_agent
    from signoff.integrations.langgraph import SignoffMiddleware

    signoff = SignoffMiddleware(gate, agent_id="support",
                                policies={"lookup_order": Policy(when=False)})
    agent = create_agent(model, tools=[issue_refund, lookup_order], checkpointer=saver,
                         middleware=[signoff])
    await agent.ainvoke({"messages": [...]}, {"configurable": {"thread_id": "ticket-4711"}})

:class:`SignoffMiddleware` (langchain's ``create_agent``) and :func:`tool_call_wrapper`
(LangGraph's ``ToolNode(..., awrap_tool_call=...)``) put every tool call of the graph
through ``gate.authorize`` under the graph's ``thread_id`` (the signoff ``run_id``) and the
model's tool call id. Two ways to pause, both LangGraph's own:

- ``mode="wait"`` (the default): the tool call waits for the decision in the tools node.
  The checkpointer holds the model's turn, so a graph resumed after a crash
  (``ainvoke(None, config)``) runs the tools node again and finds the same request.
- ``mode="interrupt"``: the tools node calls ``interrupt()`` with a langchain
  ``HITLRequest`` (``action_requests``, ``review_configs``) that carries the signoff request.
  Once approvers decide in signoff, :func:`resume_command` builds the ``Command(resume=…)``
  whose values are signoff's decisions in langchain's HITL shape (approve / edit / reject /
  respond).

A node re-executes from its top when resumed; the call then finds its request again (no
second request) and, if it ran before, its recorded result (no second run). A resume value
is never taken as a decision: whoever resumes the graph, with whatever value, only makes
the node look at signoff's store again, and the tool runs only if the request is approved
there, once, with the approved arguments. A ``respond`` decision in signoff (the approver's
answer in the tool's place) is the tool's message for the model, and the tool does not run;
the review config offers exactly the decisions the request's policy allows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeAlias

from signoff.errors import ConfigError, MissingDependency
from signoff.gate import Gate
from signoff.integrations._framework import Policies, declare, request_view, resolve_run
from signoff.models import ApprovalRequest, DecisionKind, Run, Status
from signoff.outcome import CallStatus, Outcome

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain.agents.middleware.human_in_the_loop import (
        ActionRequest,
        Decision,
        DecisionType,
        HITLRequest,
        HITLResponse,
    )
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import BaseTool
    from langgraph.prebuilt.tool_node import ToolCallRequest, ToolRuntime
    from langgraph.types import Command, Interrupt, interrupt
    from pydantic import BaseModel
except ImportError as exc:
    raise MissingDependency("langgraph", "langgraph") from exc

__all__ = [
    "SIGNOFF_KEY",
    "SignoffMiddleware",
    "authorize_or_interrupt",
    "hitl_decision",
    "hitl_request",
    "resume_command",
    "thread_run",
    "tool_call_wrapper",
]

Mode: TypeAlias = Literal["wait", "interrupt"]
Handler: TypeAlias = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]
RunFor: TypeAlias = Callable[[ToolRuntime], Run]

#: where an interrupt's value carries the signoff request
SIGNOFF_KEY = "signoff"


def thread_run(agent_id: str) -> RunFor:
    """The signoff run of a tool call: the agent, and the graph's ``thread_id`` as run id."""

    def run_for(runtime: ToolRuntime) -> Run:
        configurable = (runtime.config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        if not thread_id:
            raise ConfigError("a gated graph needs a thread_id in its config (and a checkpointer)")
        return Run(agent_id=agent_id, run_id=str(thread_id))

    return run_for


class _ToolGate:
    """What the middleware and the ToolNode wrapper share: one tool call through the gate."""

    def __init__(
        self, gate: Gate, *, agent_id: str, run: RunFor | None, policies: Policies, mode: Mode
    ) -> None:
        if mode not in ("wait", "interrupt"):
            raise ConfigError(f"mode must be 'wait' or 'interrupt', not {mode!r}")
        self.gate = gate
        self.run_for = run or thread_run(agent_id)
        self.policies = policies
        self.mode = mode

    async def __call__(
        self, request: ToolCallRequest, handler: Handler
    ) -> ToolMessage | Command[Any]:
        tool = request.tool
        if tool is None:
            return await handler(request)  # not a tool of this graph: ToolNode says so
        call = request.tool_call
        name, args, call_id = call["name"], dict(call["args"]), call["id"]
        if name not in self.gate.tools:  # the schema is costly to build: once per tool
            declare(
                self.gate,
                name,
                input_schema=_input_schema(tool),
                description=tool.description,
                policies=self.policies,
            )
        run = resolve_run(self.run_for, request.runtime)
        if self.mode == "wait":
            outcome = await self.gate.authorize(name, args, tool_call_id=call_id, run=run)
        else:
            outcome = await authorize_or_interrupt(
                self.gate, name, args, tool_call_id=call_id, run=run
            )
        return await self._finish(outcome, request, handler)

    async def _finish(
        self, outcome: Outcome, request: ToolCallRequest, handler: Handler
    ) -> ToolMessage | Command[Any]:
        call = request.tool_call
        if outcome.status is not CallStatus.AUTHORIZED:
            # not run: rejected, timed out … or it ran before (its recorded result)
            return ToolMessage(
                content=outcome.to_model(),
                tool_call_id=call["id"],
                name=call["name"],
                status="error" if outcome.is_error else "success",
            )
        final = outcome.final_args if outcome.final_args is not None else outcome.args
        try:
            response = await handler(request.override(tool_call={**call, "args": dict(final)}))
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                await self.gate.report(outcome, error=exc)
            raise
        if not isinstance(response, ToolMessage):
            await self.gate.report(outcome, result=None)  # a Command: the graph's own business
            return response
        if response.status == "error":
            await self.gate.report(outcome, error=RuntimeError(str(response.content)))
            return response
        reported = await self.gate.report(outcome, result=response.content)
        if reported.modified_fields:
            # tell the model the approver's edit, or it may retry its own arguments
            return response.model_copy(update={"content": reported.to_model()})
        return response


class SignoffMiddleware(AgentMiddleware):
    """langchain ``create_agent`` middleware: every tool call through ``gate``.

    ``agent_id`` names the agent in signoff; the run id is the graph's ``thread_id`` (or
    give ``run``, a function of the tool's ``ToolRuntime``). ``policies``: one policy for
    every tool, or a policy per tool name; a tool without one asks a human, unless the
    application declared it on the gate itself. Needs async invocation (``ainvoke``).
    """

    def __init__(
        self,
        gate: Gate,
        *,
        agent_id: str = "agent",
        run: RunFor | None = None,
        policies: Policies = None,
        mode: Mode = "wait",
    ) -> None:
        super().__init__()
        self._gate = _ToolGate(gate, agent_id=agent_id, run=run, policies=policies, mode=mode)

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Handler
    ) -> ToolMessage | Command[Any]:
        return await self._gate(request, handler)


def tool_call_wrapper(
    gate: Gate,
    *,
    agent_id: str = "agent",
    run: RunFor | None = None,
    policies: Policies = None,
    mode: Mode = "wait",
) -> Callable[[ToolCallRequest, Handler], Awaitable[ToolMessage | Command[Any]]]:
    """An ``awrap_tool_call`` for LangGraph's ``ToolNode``: every tool call through ``gate``
    (arguments as for :class:`SignoffMiddleware`).

    In ``interrupt`` mode give each tool call its own task (``Send``, as ``create_agent``
    does): LangGraph matches a node's interrupts to resume values by their order, which
    calls running side by side in one task do not keep.
    """
    return _ToolGate(gate, agent_id=agent_id, run=run, policies=policies, mode=mode)


async def authorize_or_interrupt(
    gate: Gate, name: str, args: dict[str, Any], *, tool_call_id: str | None, run: Run
) -> Outcome:
    """``gate.authorize`` for a call made inside a LangGraph node, pausing the graph with
    ``interrupt()`` while its request is pending; for nodes of your own.

    ``AUTHORIZED``: run the tool now with ``outcome.final_args`` and ``gate.report`` what it
    returned; any other status is the answer for the model (``outcome.to_model()``). Call it
    before any other side effect of the node: the node re-executes from its top on resume.
    """
    outcome = await gate.authorize(name, args, tool_call_id=tool_call_id, run=run, wait=False)
    while outcome.status is CallStatus.PENDING:
        assert outcome.request is not None
        # The first time: pause the graph. Re-executed after a resume: interrupt() hands
        # back the resume value, which decides nothing; the store is asked again, and a
        # request still pending pauses the graph anew (the next interrupt of this node).
        interrupt(hitl_request(outcome.request))
        outcome = await gate.authorize(name, args, tool_call_id=tool_call_id, run=run, wait=False)
    return outcome


def hitl_request(request: ApprovalRequest) -> HITLRequest:
    """A signoff request as langchain's ``HITLRequest`` (what ``interrupt()`` is given),
    the request itself under ``"signoff"``."""
    allowed: list[DecisionType] = [
        d for d in request.policy.decisions if d != "edit" or request.policy.editable
    ]
    action: ActionRequest = {
        "name": request.tool,
        "args": dict(request.args),
        "description": request.reason or f"Tool call {request.tool} needs approval",
    }
    payload: dict[str, Any] = {
        "action_requests": [action],
        "review_configs": [{"action_name": request.tool, "allowed_decisions": allowed}],
        SIGNOFF_KEY: request_view(request),
    }
    return payload  # type: ignore[return-value]  # HITLRequest plus the "signoff" key


def hitl_decision(request: ApprovalRequest) -> Decision | None:
    """Signoff's decision on ``request`` in langchain's HITL shape (None: still pending)."""
    if request.status is Status.PENDING:
        return None
    if request.status is Status.APPROVED:
        if request.final_args == request.args:
            return {"type": "approve"}
        return {"type": "edit", "edited_action": {"name": request.tool, "args": request.final_args}}
    if request.status is Status.RESPONDED:
        response = request.response
        text = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
        return {"type": "respond", "message": text}
    reasons = [d.reason for d in request.decisions if d.decision is DecisionKind.REJECT]
    message = reasons[-1] if reasons and reasons[-1] else f"The request was {request.status}."
    return {"type": "reject", "message": message}


async def resume_command(gate: Gate, interrupts: Sequence[Interrupt]) -> Command[Any] | None:
    """The ``Command(resume={interrupt id: HITLResponse})`` for the interrupts whose signoff
    requests are decided (None: none is). ``interrupts``: ``result["__interrupt__"]`` or
    ``(await graph.aget_state(config)).interrupts``. Interrupts of other nodes are left out.

    The values are for the record and for UIs that show them: resumed, each node asks
    signoff's store for the decision itself."""
    resume: dict[str, HITLResponse] = {}
    for pause in interrupts:
        value = pause.value
        view = value.get(SIGNOFF_KEY) if isinstance(value, dict) else None
        if not isinstance(view, dict):
            continue
        decision = hitl_decision(await gate.get(str(view["request_id"])))
        if decision is not None:
            resume[pause.id] = {"decisions": [decision]}
    return Command(resume=resume) if resume else None


def _input_schema(tool: BaseTool) -> dict[str, Any]:
    schema = tool.tool_call_schema  # the arguments the model gives (injected ones left out)
    if isinstance(schema, dict):
        return dict(schema)
    if issubclass(schema, BaseModel):
        return schema.model_json_schema()
    raise ConfigError(f"tool {tool.name!r} has no JSON schema signoff can use")
