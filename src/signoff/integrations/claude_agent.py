"""The Claude Agent SDK, with signoff deciding which of Claude Code's tool calls run.

    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
    from signoff import Gate, Policy
    from signoff.integrations.claude_agent import ClaudeApprovals

    approvals = ClaudeApprovals(gate, agent_id="coder", policies={
        "Read": Policy(when=False),                      # runs without asking
        "Bash": Policy(min_role="publisher", editable=["command"]),
    })
    options = approvals.options(ClaudeAgentOptions(cwd="/repo"))
    async with ClaudeSDKClient(options) as client:
        await client.query("Clean up the build folder")
        async for message in client.receive_response(): ...

Claude Code keeps its loop and runs the tools; signoff decides. Two native pauses are used:

- the hook form (``options()``, the default): a ``PreToolUse`` hook on every tool call. It
  sees every call, before Claude Code's own permission rules, so nothing is auto-allowed
  past it (read-only commands, ``allowed_tools``, ``acceptEdits``). Approved: ``allow`` with
  ``updatedInput`` = the approved arguments; otherwise ``deny`` with the not-run JSON
  (docs/guide.md).
- the callback form (``options(form="callback")``): ``can_use_tool``, which Claude Code
  consults only for calls its own rules would ask about. Approved:
  ``PermissionResultAllow(updated_input=final_args)``; otherwise
  ``PermissionResultDeny(message=<not-run JSON (docs/guide.md)>)``.

Either way a ``PostToolUse`` hook records what the tool returned (``PostToolUseFailure``: how
it failed) as the request's outcome, and tells the model which arguments an approver changed.
Anything going wrong in signoff denies the call: it never fails open.

Which request a call is: the run is the Claude Code session (``run_id`` = ``session_id``,
which a resumed session keeps) unless a ``run`` with a ``run_id`` is given, and a call is
known by its tool and arguments within the run (:mod:`signoff.integrations._calls`). So when
the agent's process dies while a call waits, and a new process resumes the session, the
model's repeated call finds the same request, decided meanwhile, and runs once; a call that
was already run is asked about anew, never re-run silently. (A session Claude Code had not
yet written to disk cannot be resumed: a ``run_id`` of the caller's own spans sessions.)

Not seen by signoff: in the callback form, calls Claude Code allows by its own rules before
asking; in either form, what a tool did when the process died between running it and the
``PostToolUse`` hook (the request then stays claimed without an outcome, and is not run again).

``pip install 'signoff[claude-agent]'``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from signoff._util import jsonable
from signoff.errors import MissingDependency
from signoff.gate import Gate
from signoff.integrations._calls import CallFinder
from signoff.models import Run
from signoff.outcome import CallStatus, Outcome
from signoff.policy import Policy
from signoff.types import JSONObject

try:
    from claude_agent_sdk import (
        ClaudeAgentOptions,
        HookContext,
        HookInput,
        HookMatcher,
        PermissionResult,
        PermissionResultAllow,
        PermissionResultDeny,
        ToolPermissionContext,
    )
    from claude_agent_sdk.types import HookEvent, SyncHookJSONOutput
except ImportError as exc:
    raise MissingDependency("claude-agent-sdk", "claude-agent") from exc

__all__ = ["ANY_INPUT", "READ_ONLY_TOOLS", "ClaudeApprovals", "ClaudeToolError"]

log = logging.getLogger(__name__)

#: the schema of a Claude Code tool signoff knows nothing about: Claude Code checks the
#: input itself; signoff needs it to be an object
ANY_INPUT: JSONObject = {"type": "object"}
#: Claude Code's tools that change nothing outside the session: reading files, searching,
#: loading tool schemas, the model's own to-do list. Not allowed by default; pass
#: ``allow=READ_ONLY_TOOLS`` to let them run without asking (the config file still rules).
READ_ONLY_TOOLS = ("Read", "Glob", "Grep", "ToolSearch", "TodoWrite")
#: how long Claude Code lets the gating hook wait for a person (it denies after that)
DEFAULT_HOOK_TIMEOUT_S = 24 * 3600.0
#: calls remembered between their permission and their PostToolUse hook, at most
_REMEMBERED = 10_000


class ClaudeToolError(Exception):
    """A Claude Code tool failed after it was allowed (the text is Claude Code's)."""


class ClaudeApprovals:
    """Signoff as the Claude Agent SDK's permission layer for one gate.

    ``agent_id`` names the agent in every request (on a remote gate the token's ``sub``
    does). ``run`` may fix the ``run_id`` and add metadata; without a ``run_id`` each Claude
    Code session is its own run. ``policies`` gives Claude Code's tools (``Bash``, ``Write``,
    ``mcp__server__tool`` …) their policies, and ``allow`` names tools that run without
    asking (``READ_ONLY_TOOLS``, say). Either way the gate's config file is the floor; a tool
    with no policy anywhere asks a human.
    """

    def __init__(
        self,
        gate: Gate,
        *,
        agent_id: str = "claude-agent",
        run: Run | None = None,
        policies: Mapping[str, Policy] | None = None,
        allow: Iterable[str] = (),
        hook_timeout: float = DEFAULT_HOOK_TIMEOUT_S,
    ) -> None:
        self.gate = gate
        self.run = run if run is not None else Run(agent_id=agent_id)
        self.policies = {name: Policy(when=False) for name in allow} | dict(policies or {})
        self.hook_timeout = hook_timeout
        self._finder = CallFinder(gate)
        #: tool_use_id → session_id, learned from PreToolUse (can_use_tool is not told it)
        self._sessions: OrderedDict[str, str] = OrderedDict()
        #: tool_use_id → the authorized call, until PostToolUse reports how it went
        self._authorized: OrderedDict[str, Outcome] = OrderedDict()

    # -- wiring ---------------------------------------------------------------------------

    def options(
        self,
        base: ClaudeAgentOptions | None = None,
        *,
        form: Literal["hook", "callback"] = "hook",
    ) -> ClaudeAgentOptions:
        """``base`` (or default options) with signoff's hooks added (the caller's own hooks
        are kept), and in the callback form ``can_use_tool`` set.

        In the hook form a settings ``ask`` rule can still make Claude Code ask about a call
        the hook allowed; give ``can_use_tool=approvals.can_use_tool`` as well if you keep
        such rules: it answers from the hook's decision, without asking twice."""
        base = base if base is not None else ClaudeAgentOptions()
        hooks: dict[HookEvent, list[HookMatcher]] = {
            event: list(matchers) for event, matchers in (base.hooks or {}).items()
        }
        for event, matchers in self.hooks(gate_calls=form == "hook").items():
            hooks.setdefault(event, []).extend(matchers)
        if form == "hook":
            return dataclasses.replace(base, hooks=hooks)
        return dataclasses.replace(base, hooks=hooks, can_use_tool=self.can_use_tool)

    def hooks(self, *, gate_calls: bool = True) -> dict[HookEvent, list[HookMatcher]]:
        """The hooks to give ``ClaudeAgentOptions(hooks=…)``: ``PreToolUse`` (gating every
        call, or with ``gate_calls=False`` only noting its session for ``can_use_tool``),
        ``PostToolUse`` and ``PostToolUseFailure`` (recording outcomes)."""
        pre = self.pre_tool_use if gate_calls else self._note_session
        return {
            # a hook that fails or times out blocks the call: never fail open
            "PreToolUse": [HookMatcher(hooks=[pre], timeout=self.hook_timeout, on_failure="block")],
            "PostToolUse": [HookMatcher(hooks=[self.post_tool_use])],
            "PostToolUseFailure": [HookMatcher(hooks=[self.post_tool_use_failure])],
        }

    # -- the two pauses -------------------------------------------------------------------

    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResult:
        """The SDK's permission callback: allow with the approved input, or deny with why."""
        tool_use_id = context.tool_use_id or ""
        earlier = self._authorized.get(tool_use_id)
        if earlier is not None:  # the PreToolUse hook already decided this very call
            return PermissionResultAllow(updated_input=_final(earlier))
        session = self._sessions.pop(tool_use_id, None)
        outcome = await self._decide(tool_name, tool_input, tool_use_id, session, context.agent_id)
        if outcome.status is CallStatus.AUTHORIZED:
            return PermissionResultAllow(updated_input=_final(outcome))
        return PermissionResultDeny(message=outcome.to_model())

    async def pre_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        """The ``PreToolUse`` hook that gates every call."""
        data: Mapping[str, Any] = hook_input
        call_id = tool_use_id or str(data.get("tool_use_id") or "")
        outcome = await self._decide(
            str(data.get("tool_name")),
            dict(data.get("tool_input") or {}),
            call_id,
            data.get("session_id"),
            data.get("agent_id"),
        )
        if outcome.status is CallStatus.AUTHORIZED:
            request = outcome.request
            why = "no approval needed" if request is None else f"approved in signoff ({request.id})"
            return {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "allow",
                    "permissionDecisionReason": why,
                    "updatedInput": _final(outcome),
                }
            }
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": outcome.to_model(),
            }
        }

    async def _note_session(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        """PreToolUse in the callback form: remember the call's session, decide nothing."""
        data: Mapping[str, Any] = hook_input
        if tool_use_id and isinstance(session := data.get("session_id"), str):
            _remember(self._sessions, tool_use_id, session)
        return {}

    # -- what happened --------------------------------------------------------------------

    async def post_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        """Record the tool's response as the outcome; tell the model about edited arguments."""
        data: Mapping[str, Any] = hook_input
        outcome = self._authorized.pop(tool_use_id or "", None)
        self._sessions.pop(tool_use_id or "", None)
        if outcome is None:
            return {}
        ran_with = data.get("tool_input")
        if ran_with is not None and ran_with != _final(outcome):
            log.warning(
                "signoff: %s ran with arguments other than the approved ones (another hook?)",
                outcome.tool,
            )
        done = await self.gate.report(outcome, result=jsonable(data.get("tool_response")))
        note = _edit_note(done)
        if note is None:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PostToolUse", "additionalContext": note}}

    async def post_tool_use_failure(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> SyncHookJSONOutput:
        """Record how an allowed tool failed."""
        data: Mapping[str, Any] = hook_input
        outcome = self._authorized.pop(tool_use_id or "", None)
        self._sessions.pop(tool_use_id or "", None)
        if outcome is not None:
            await self.gate.report(outcome, error=ClaudeToolError(str(data.get("error"))))
        return {}

    # -- deciding -------------------------------------------------------------------------

    async def _decide(
        self,
        tool_name: str,
        tool_input: dict[str, Any],
        tool_use_id: str,
        session_id: Any,
        subagent: Any,
    ) -> Outcome:
        try:
            if tool_name not in self.gate.tools:
                self.gate.add_tool(
                    tool_name,
                    input_schema=ANY_INPUT,
                    description=f"Claude Code's {tool_name} tool",
                    policy=self.policies.get(tool_name),
                )
            run = self._run_for(session_id, tool_use_id, subagent)
            outcome = await self._finder.authorize(tool_name, tool_input, run=run)
        except Exception as exc:
            log.exception("signoff: could not decide %s", tool_name)
            return Outcome(
                CallStatus.UNAVAILABLE,
                tool_name,
                tool_input,
                message=f"the call was not run: approval could not be obtained ({exc})",
                tool_call_id=tool_use_id,
                error=exc,
            )
        if outcome.status is CallStatus.AUTHORIZED and outcome.request is not None:
            _remember(self._authorized, tool_use_id, outcome)
        return outcome

    def _run_for(self, session_id: Any, tool_use_id: str, subagent: Any) -> Run:
        session = session_id if isinstance(session_id, str) and session_id else None
        metadata: JSONObject = {**self.run.metadata, "claude_tool_use_id": tool_use_id}
        if isinstance(subagent, str) and subagent:
            metadata["claude_subagent_id"] = subagent
        return self.run.model_copy(
            update={
                "run_id": self.run.run_id or session,
                "session_id": self.run.session_id or session,
                "metadata": metadata,
            }
        )


def _final(outcome: Outcome) -> dict[str, Any]:
    return dict(outcome.final_args if outcome.final_args is not None else outcome.args)


def _edit_note(done: Outcome) -> str | None:
    """What the model is told when an approver changed the arguments (docs/guide.md)."""
    if not done.modified_fields:
        return None
    told = done.to_model_json()
    approval = told.get("approval") if isinstance(told, dict) else None
    return None if approval is None else json.dumps({"approval": approval}, ensure_ascii=False)


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _REMEMBERED:
        cache.popitem(last=False)
