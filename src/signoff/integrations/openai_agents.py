"""OpenAI Agents SDK: ``needs_approval`` from a signoff policy, and a run's interruptions
decided in signoff.

    from agents import Agent, Runner
    from signoff.integrations.openai_agents import gated_tool, pause

    refund = gated_tool(gate, issue_refund, run=RUN, policy=Policy(min_role="publisher"))
    agent = Agent(name="support", tools=[refund, gated_tool(gate, lookup_order, run=RUN,
                                                                    policy=Policy(when=False))])
    result = await Runner.run(agent, "Refund ORD-1")
    paused = await pause(gate, result, run=RUN)       # one signoff request per interruption
    save(paused.to_json())                            # durable: resume in any process
    ...
    paused = await PausedRun.from_json(agent, load())
    await paused.wait(gate)                           # or come back when approvers decided
    result = await Runner.run(agent, await paused.apply(gate))

The SDK keeps its loop and its pause (``needs_approval`` → ``result.interruptions`` →
``RunState``); signoff decides. :func:`gated_tool` answers ``needs_approval`` with the
gate's policy (no side effects; fails closed), and wraps the tool's ``on_invoke_tool`` so
that the body runs only when signoff's store holds an approval for that ``call_id``,
claimed once, with the approved arguments (an approver's edit included, which the SDK alone
cannot do). A ``state.approve(...)`` made by anyone else runs nothing: the model is told the
call still waits. :meth:`PausedRun.apply` turns signoff's decisions into the RunState's:
``approve``, or ``reject`` with the not-run JSON (docs/guide.md) as the ``rejection_message``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

from signoff.errors import ConfigError, MissingDependency
from signoff.gate import Gate
from signoff.integrations._framework import DECIDED_NOT_RUN, RunSource, declare, resolve_run
from signoff.models import Run, Status
from signoff.outcome import CallStatus
from signoff.policy import Policy

try:
    from agents import Agent, FunctionTool, RunContextWrapper, RunResult, RunState
    from agents.tool_context import ToolContext
except ImportError as exc:
    raise MissingDependency("openai-agents", "openai-agents") from exc

__all__ = ["PausedRun", "gated_tool", "pause", "signoff_needs_approval"]

#: the version of :meth:`PausedRun.to_json`'s shape
PAUSED_RUN_VERSION = 1


def signoff_needs_approval(gate: Gate, name: str, run: RunSource[RunContextWrapper[Any]]) -> Any:
    """A ``needs_approval`` callable for the SDK: whether the gate's policy asks a human for
    this call. Reads the policy only (no request is made); fails closed."""

    async def needs_approval(
        context: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        return await gate.needs_approval(
            name, params, tool_call_id=call_id, run=resolve_run(run, context)
        )

    return needs_approval


def gated_tool(
    gate: Gate,
    tool: FunctionTool,
    *,
    run: RunSource[RunContextWrapper[Any]],
    policy: Policy | None = None,
) -> FunctionTool:
    """``tool`` behind ``gate``: the same tool for the SDK and the model, with
    ``needs_approval`` from the policy and a body that runs only with signoff's approval.

    The tool is declared on the gate (its JSON schema, ``policy``; none asks a human) unless
    the application declared it there already. ``run`` is a signoff :class:`Run` with a
    ``run_id`` (the conversation), or a function of the SDK's run context that returns one.
    """
    declare(
        gate,
        tool.name,
        input_schema=tool.params_json_schema,
        description=tool.description,
        policies=policy,
    )
    invoke_body = tool.on_invoke_tool

    async def on_invoke_tool(context: ToolContext[Any], input_json: str) -> Any:
        outcome = await gate.authorize(
            tool.name,
            input_json,
            tool_call_id=context.tool_call_id,
            run=resolve_run(run, context),
            wait=False,
        )
        if outcome.status is CallStatus.EXECUTED:
            return outcome.to_model()  # it ran before: its recorded result, not a second run
        if outcome.status is not CallStatus.AUTHORIZED:
            # rejected, expired, not (yet) approved in signoff, already used …: not run
            return outcome.to_model()
        final = outcome.final_args if outcome.final_args is not None else outcome.args
        try:
            result = await invoke_body(context, json.dumps(final))
        except BaseException as exc:
            await gate.report(outcome, error=exc)
            raise
        reported = await gate.report(outcome, result=result)
        return reported.to_model() if reported.modified_fields else result

    return dataclasses.replace(
        tool,
        needs_approval=signoff_needs_approval(gate, tool.name, run),
        on_invoke_tool=on_invoke_tool,
    )


@dataclass
class PausedRun:
    """A run the SDK paused for approvals, with the signoff request of each interruption.

    Store :meth:`to_json` wherever the run must survive (a file, a database row) and load it
    with :meth:`from_json` in any process that has the same agent.
    """

    state: RunState[Any, Agent[Any]]
    run: Run
    #: the SDK's ``call_id`` → the signoff request id
    requests: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "signoff_paused_run": PAUSED_RUN_VERSION,
            "run": self.run.model_dump(mode="json"),
            "requests": dict(self.requests),
            "state": self.state.to_json(),
        }

    @classmethod
    async def from_json(cls, agent: Agent[Any], data: dict[str, Any], **kwargs: Any) -> PausedRun:
        """Load a paused run; ``kwargs`` go to ``RunState.from_json`` (context_deserializer …).

        Only load what this application stored: the state holds the run's pending calls.
        """
        if data.get("signoff_paused_run") != PAUSED_RUN_VERSION:
            raise ConfigError("not a paused run stored by signoff.integrations.openai_agents")
        state = await RunState.from_json(agent, data["state"], **kwargs)
        return cls(state, Run.model_validate(data["run"]), dict(data["requests"]))

    async def decided(self, gate: Gate) -> bool:
        """Whether every interruption's request is decided (or expired)."""
        for request_id in self.requests.values():
            if (await gate.get(request_id)).status is Status.PENDING:
                return False
        return True

    async def wait(self, gate: Gate, *, timeout: float | None = None, poll: float = 0.2) -> bool:
        """Wait until every request is decided (True), or ``timeout`` seconds (False).

        Reading a request past its deadline expires it, so a timed-out request ends the wait.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not await self.decided(gate):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True

    async def apply(self, gate: Gate) -> RunState[Any, Agent[Any]]:
        """Signoff's decisions, written into the RunState: ``approve`` for an approved request,
        ``reject`` (with what the model is told) for a rejected, expired or cancelled one;
        a pending one is left as it is (the SDK interrupts again for it). Claims nothing: the
        approval is claimed when the tool is invoked. Returns the state, for ``Runner.run``."""
        for item in self.state.get_interruptions():
            request_id = self.requests.get(item.call_id or "")
            if request_id is None:
                continue  # not a call signoff was asked about
            request = await gate.get(request_id)
            if request.status is Status.APPROVED:
                self.state.approve(item)
            elif request.status in DECIDED_NOT_RUN:
                # final and not approved: asking again claims nothing, and says what to tell
                outcome = await gate.authorize(
                    request.tool, request.args, tool_call_id=item.call_id, run=self.run, wait=False
                )
                self.state.reject(item, rejection_message=outcome.to_model())
        return self.state


async def pause(gate: Gate, result: RunResult, *, run: Run) -> PausedRun | None:
    """One signoff request per interruption of ``result`` (None: the run was not paused).

    Idempotent: a request made before for the same ``run_id`` and ``call_id`` is found, not
    made again, so pausing the same result twice (a retried job) asks nobody twice. Pause a
    result before its requests are decided: finding an approved one claims its approval
    (signoff has no claim-free lookup by call id yet), and the tool then answers that the
    approval was used rather than run.
    """
    if not result.interruptions:
        return None
    paused = PausedRun(result.to_state(), run)
    for item in result.interruptions:
        name = item.name
        if not name or name not in gate.tools:
            continue  # a tool signoff does not gate: the application decides it itself
        outcome = await gate.authorize(
            name, item.arguments or "{}", tool_call_id=item.call_id, run=run, wait=False
        )
        if outcome.request is not None and item.call_id:
            paused.requests[item.call_id] = outcome.request.id
        elif outcome.status is CallStatus.AUTHORIZED:
            paused.state.approve(item)  # the policy lets it run now: nobody to ask
        else:
            # refused before anyone was asked (arguments that do not fit, a deny, a hook's
            # cancel, the approval service unreachable): the model is told why
            paused.state.reject(item, rejection_message=outcome.to_model())
    return paused
