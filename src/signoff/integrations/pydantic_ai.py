"""Pydantic AI: any toolset behind the gate, inline or through deferred tools.

    from pydantic_ai import Agent, DeferredToolRequests
    from signoff.integrations.pydantic_ai import SignoffToolset, deferred_tool_results

    toolset = SignoffToolset(FunctionToolset([issue_refund, lookup_order]), gate=gate,
                             run=Run(agent_id="support", run_id="ticket-4711"),
                             policies={"lookup_order": Policy(when=False)})
    agent = Agent(model, toolsets=[toolset])

Two ways to pause, both Pydantic AI's own:

- ``wait=True`` (the default): a call that needs a human waits for the decision inside the
  run, like a slow tool. The run's messages can be checkpointed after each node
  (``agent.iter``); a run resumed from them (``message_history=...``, no new prompt) calls
  the same tools again under the same ``tool_call_id`` and finds the same request.
- ``wait=False``: the call raises :class:`~pydantic_ai.exceptions.ApprovalRequired` with the
  signoff request in its metadata, and the run ends with
  :class:`~pydantic_ai.DeferredToolRequests` (put it in ``output_type``). Keep
  ``result.all_messages()``; once approvers have decided, :func:`deferred_tool_results`
  turns signoff's decisions into :class:`~pydantic_ai.DeferredToolResults` for the next run.

Either way signoff, not the framework, decides: a call runs only when ``gate.authorize``
finds its request approved in signoff's store, and then exactly once, with the approved
(possibly edited) arguments. An approval written into ``DeferredToolResults`` by anyone
else runs nothing: the call is deferred again. A rejection or a timeout reaches the model
as the not-run JSON (docs/guide.md): a denied result (``ToolDenied``) through the bridge,
a failed result (``ToolFailed``) inline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from signoff.errors import MissingDependency
from signoff.gate import Gate
from signoff.integrations._framework import (
    DECIDED_NOT_RUN,
    Policies,
    RunSource,
    declare,
    request_view,
    resolve_run,
    result_for_model,
)
from signoff.models import Run, Status
from signoff.outcome import CallStatus

try:
    from pydantic_ai import (
        ApprovalRequired,
        DeferredToolRequests,
        DeferredToolResults,
        RunContext,
        ToolApproved,
        ToolDenied,
        ToolFailed,
    )
    from pydantic_ai.toolsets import ToolsetTool, WrapperToolset
    from pydantic_core import to_jsonable_python
except ImportError as exc:
    raise MissingDependency("pydantic-ai", "pydantic-ai") from exc

__all__ = ["METADATA_KEY", "SignoffToolset", "deferred_tool_results"]

#: where the signoff request is found in ``DeferredToolRequests.metadata[tool_call_id]``
METADATA_KEY = "signoff"


@dataclass
class SignoffToolset(WrapperToolset[Any]):
    """Wraps any toolset so that each of its tools' calls goes through ``gate``.

    Each tool is declared on the gate the first time the toolset lists it (its JSON schema,
    its description, the policy from ``policies``; a tool without one asks a human). A tool
    the application declared on the gate itself keeps that declaration.
    """

    _: KW_ONLY
    gate: Gate
    #: the signoff run: fixed, or from the run context (e.g. ``lambda ctx: ctx.deps.run``).
    #: It needs a ``run_id``: with the tool call id it finds a request made before a restart
    run: RunSource[RunContext[Any]]
    policies: Policies = None
    #: wait for the decision inside the run (True), or defer the call (False)
    wait: bool = True
    _declared: set[str] = field(default_factory=set, repr=False)

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        tools = await super().get_tools(ctx)
        for name, tool in tools.items():
            if name not in self._declared:
                definition = tool.tool_def
                declare(
                    self.gate,
                    name,
                    input_schema=dict(definition.parameters_json_schema),
                    description=definition.description,
                    policies=self.policies,
                )
                self._declared.add(name)
        return tools

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        run = resolve_run(self.run, ctx)
        proposed = to_jsonable_python(tool_args)
        # a run resumed with an approval in hand checks it in signoff's store, never waits
        wait = self.wait and not ctx.tool_call_approved
        outcome = await self.gate.authorize(
            name, proposed, tool_call_id=ctx.tool_call_id, run=run, wait=wait
        )
        if outcome.status is CallStatus.PENDING:
            assert outcome.request is not None
            raise ApprovalRequired(metadata={METADATA_KEY: request_view(outcome.request)})
        if outcome.status is CallStatus.EXECUTED:
            # it ran before (a resumed run): its recorded result, not a second run
            return result_for_model(outcome, outcome.result)
        if outcome.status is CallStatus.RESPONDED:
            return outcome.to_model()  # an approver's answer in the tool's place
        if outcome.status is not CallStatus.AUTHORIZED:
            raise ToolFailed(outcome.to_model())
        final = outcome.final_args if outcome.final_args is not None else proposed
        args = tool_args
        if final != proposed:
            # the approver's edit: validated by the tool's own schema, as the model's args were
            args = tool.args_validator.validate_json(json.dumps(final))
        try:
            result = await super().call_tool(name, args, ctx, tool)
        except BaseException as exc:
            await self.gate.report(outcome, error=exc)
            raise
        reported = await self.gate.report(outcome, result=to_jsonable_python(result))
        return result_for_model(reported, result)


async def deferred_tool_results(
    gate: Gate, requests: DeferredToolRequests, *, run: Run
) -> DeferredToolResults:
    """Signoff's decisions for the calls a :class:`SignoffToolset` deferred.

    A call whose request is approved is ``ToolApproved()`` (the toolset then claims the
    approval and runs it with signoff's final arguments); a rejected, expired or cancelled
    one is ``ToolDenied`` with what the model is told (docs/guide.md). A call still pending,
    or not deferred by signoff, is left out: ``requests.remaining(results)`` lists them.
    Reading the decisions claims nothing, so this can be called as often as wanted.
    """
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    for call in _signoff_calls(requests):
        view = requests.metadata[call.tool_call_id][METADATA_KEY]
        request = await gate.get(str(view["request_id"]))
        if request.status is Status.APPROVED:
            approvals[call.tool_call_id] = ToolApproved()
        elif request.status in DECIDED_NOT_RUN:
            # a decided request that was not approved is final: asking again claims nothing
            # and answers with the message the model should see
            outcome = await gate.authorize(
                request.tool, request.args, tool_call_id=call.tool_call_id, run=run, wait=False
            )
            approvals[call.tool_call_id] = ToolDenied(outcome.to_model())
    return DeferredToolResults(approvals=approvals)


def _signoff_calls(requests: DeferredToolRequests) -> Sequence[Any]:
    return [
        call
        for call in requests.approvals
        if METADATA_KEY in requests.metadata.get(call.tool_call_id, {})
    ]
