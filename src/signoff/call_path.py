"""The path of one gated call: arguments, hooks, policy, and — when a human must decide —
submit, wait, claim the approval once, run with exactly the approved arguments, record.

    call ─▶ validate args (the tool's schema) ─▶ hooks ─▶ policy: run │ deny │ ask
    ask ─▶ submit ─▶ wait for the decision ─▶ approved: consume once ─▶ run with final_args
                                                                     ─▶ record the outcome
                                           ─▶ otherwise: tell the model why (docs/guide.md)

A call that did not run never raises here: it is an :class:`Outcome` whose ``to_model()``
is what the model should see.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from signoff import tracing
from signoff._util import loose_args, resolve
from signoff.approvals import Approvals
from signoff.config import Config
from signoff.errors import (
    InvalidArguments,
    SignoffError,
    UnknownTool,
    UsageError,
)
from signoff.hooks import Cancel, Hook, HookResult, RequestApproval, Skip
from signoff.models import (
    ApprovalRequest,
    Run,
    ToolCall,
)
from signoff.outcome import CallStatus, Outcome
from signoff.policy import Policy, Verdict, VerdictKind, floor
from signoff.settlement import Settlement
from signoff.shadow import ShadowRecord
from signoff.tools import GatedTool

log = logging.getLogger(__name__)

#: locks that take an agent's limited calls in this process one at a time (by agent, striped)
LIMIT_STRIPES = 64


class CallPath(Settlement):
    """The Gate's call path (a part of :class:`signoff.gate.Gate`): arguments, hooks and
    policy; what needs a human goes on to :class:`Settlement`."""

    tools: dict[str, GatedTool[Any, Any]]
    config: Config
    approvals: Approvals
    _hooks: list[Hook]
    #: the event loop the limit locks belong to, and the locks
    _limit_locks: tuple[asyncio.AbstractEventLoop, list[asyncio.Lock]] | None = None

    def policy_for(self, tool: GatedTool[Any, Any]) -> Policy:
        raise NotImplementedError  # the Gate's

    async def start(self) -> None:
        raise NotImplementedError  # the Gate's

    async def call(
        self,
        name: str,
        args: Mapping[str, Any] | str | None = None,
        *,
        tool_call_id: str | None = None,
        run: Run | None = None,
        wait: bool = True,
    ) -> Outcome:
        """Gate one tool call from a model. Never raises for a call that did not run.

        With ``wait=False`` a call that needs a human is submitted and not waited for: the
        outcome is ``PENDING`` with its ``request``. Calling again with the same ``run`` (with
        a ``run_id``) and ``tool_call_id`` finds that request, in this process or another,
        and settles it: a framework that pauses a run on its own (an interrupt, a deferred
        tool) resumes this way, and the tool still runs at most once.
        """
        return await self._gate(name, args, tool_call_id=tool_call_id, run=run, wait=wait)

    async def authorize(
        self,
        name: str,
        args: Mapping[str, Any] | str | None = None,
        *,
        tool_call_id: str | None = None,
        run: Run | None = None,
        wait: bool = True,
    ) -> Outcome:
        """Like :meth:`call`, but the tool is run by the caller, not the gate.

        ``AUTHORIZED`` means: run it now, with exactly ``outcome.final_args``, then
        :meth:`report` what happened. An approval is claimed (consumed) before this returns,
        so it authorizes one run, once. Any other status is the answer for the model, as
        from :meth:`call`.
        """
        return await self._gate(
            name, args, tool_call_id=tool_call_id, run=run, wait=wait, execute=False
        )

    async def report(
        self, outcome: Outcome, *, result: Any = None, error: BaseException | None = None
    ) -> Outcome:
        """Record what happened when the caller ran an ``AUTHORIZED`` call: ``result``, or the
        ``error`` it raised. Returns the ``EXECUTED`` (or ``FAILED``) outcome."""
        if outcome.status is not CallStatus.AUTHORIZED:
            raise UsageError(f"only an authorized call is reported, not a {outcome.status} one")
        request = outcome.request
        final = outcome.final_args if outcome.final_args is not None else outcome.args
        if error is not None:
            if request is not None:
                request = await self._report(request, "failed", {"error": repr(error)}) or request
            return replace(
                outcome,
                status=CallStatus.FAILED,
                executed_args=dict(final),
                message=f"the tool failed: {error!r}",
                request=request,
                error=error,
            )
        if request is not None:
            request = await self._report(request, "succeeded", result) or request
        return replace(
            outcome,
            status=CallStatus.EXECUTED,
            executed_args=dict(final),
            result=result,
            message=None,
            request=request,
        )

    async def needs_approval(
        self,
        name: str,
        args: Mapping[str, Any] | str | None = None,
        *,
        tool_call_id: str | None = None,
        run: Run | None = None,
    ) -> bool:
        """Whether :meth:`call` would ask a human for this call (hooks and policy, no side
        effects in the store). Fails closed: arguments that do not parse, or a policy or hook
        that fails, mean True; an unknown tool is :class:`UnknownTool`."""
        tool = self.tools.get(name)
        if tool is None:
            raise UnknownTool(f"unknown tool {name!r}")
        decoded = _decode_args(args)
        if isinstance(decoded, str):
            return True
        try:
            kwargs, args_json = tool.schema.parse(decoded)
        except InvalidArguments:
            return True
        call = ToolCall(tool.name, kwargs, args_json=args_json, tool_call_id=tool_call_id, run=run)
        answer = await self._hooks_answer(tool, call)
        if isinstance(answer, (Skip, Cancel)):
            return False
        if tool.name in self.config.shadow_tools:
            return False
        if isinstance(answer, RequestApproval):
            return True
        return (await self._judge(tool.policy, call)).kind is VerdictKind.ASK

    async def _judge(self, policy: Policy, call: ToolCall, reserved: str | None = None) -> Verdict:
        """The policy's verdict; for one over the agent's history (:mod:`signoff.history`),
        on the history read now (less the call's own reservation), outside any write. A
        read that fails leaves the history out, so such a condition asks (fails closed)."""
        if policy.history_lookback is None:
            return await policy.verdict(call)
        try:
            await self.start()
            history = await self.approvals.history(call, policy.history_lookback)
        except Exception as exc:
            log.warning("signoff: could not read the history for %s: %r", call.tool_name, exc)
            return await policy.verdict(call)
        return await policy.verdict(
            call, history if reserved is None else history.without(reserved)
        )

    async def _reserve_and_judge(
        self, policy: Policy, call: ToolCall
    ) -> tuple[Verdict, str | None]:
        """For a policy over the agent's history: add the call to the ledger first, then
        judge it on the history less its own row; the verdict and the reservation.

        Two calls at once (other processes, replicas) each see the other's reservation, so
        two calls that only fit under a line one at a time never both run: a race asks, it
        never overshoots. In this process an agent's limited calls take turns, so parallel
        tool calls are judged one after another, exactly. A call that could not be added
        asks (unrecorded, no later limit would see it)."""
        async with self._limit_lock(call.run.agent_id):
            try:
                await self.start()
                reserved = await self.approvals.record_execution(call)
            except Exception as exc:
                log.error("signoff: could not add %s to its history: %r", call.tool_name, exc)
                note = "the call could not be added to its history"
                return Verdict(VerdictKind.ASK, note=note), None
            return await self._judge(policy, call, reserved), reserved

    def _limit_lock(self, agent: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._limit_locks is None or self._limit_locks[0] is not loop:
            # a gate may outlive its event loop (asyncio.run twice): new loop, new locks
            self._limit_locks = (loop, [asyncio.Lock() for _ in range(LIMIT_STRIPES)])
        return self._limit_locks[1][hash(agent) % LIMIT_STRIPES]

    async def _unreserve(self, call: ToolCall, reserved: str | None) -> None:
        """Withdraw a call's reservation: it asked, or was denied, instead of running. A
        failure leaves it counted (later limits over-count: they ask, never overshoot)."""
        if reserved is None:
            return
        try:
            await self.approvals.void_execution(call, reserved)
        except Exception as exc:
            log.error("signoff: could not withdraw %s from its history: %r", call.tool_name, exc)

    async def _record_shadow(
        self,
        tool: GatedTool[Any, Any],
        call: ToolCall,
        policy: Policy,
        verdict: Verdict,
        override: RequestApproval | None,
    ) -> None:
        """Audit what a shadow-mode tool's policy (or a hook asking) would have done, with
        the terms the floor would have held the request to."""
        kind = verdict.kind
        if override is not None and kind is VerdictKind.RUN:
            kind = VerdictKind.ASK
        operator = self.config.operator_policy(tool.name)
        terms = policy.terms()
        if override is not None:
            terms = replace(
                terms,
                min_role=override.min_role or terms.min_role,
                quorum=override.quorum or terms.quorum,
            )
        floored = floor(
            terms,
            None if operator is None else operator.terms(),
            roles=self.config.roles,
            default_timeout_s=self.config.default_timeout_s,
            proposer_is_operator=True,
        ).policy
        asks = kind is not VerdictKind.RUN
        reason = (override.reason if override else None) or await policy.reason_text(call)
        record = ShadowRecord(
            tool=tool.name,
            verdict=kind.value,
            args=call.args_json,
            run=call.run,
            at=datetime.now(UTC),
            min_role=floored.min_role if asks else None,
            quorum=floored.quorum,
            reason=reason if asks else None,
            note=verdict.note,
            tool_call_id=call.tool_call_id,
        )
        try:
            await self.start()
            await self.approvals.record_shadow(record)
        except Exception as exc:
            # the record is the point of shadow mode, but never a reason not to run the call
            log.error("signoff: could not record the shadow verdict of %s: %r", tool.name, exc)

    async def _gate(
        self,
        name: str,
        args: Mapping[str, Any] | str | None,
        *,
        tool_call_id: str | None,
        run: Run | None,
        wait: bool = True,
        execute: bool = True,
    ) -> Outcome:
        tool = self.tools.get(name)
        raw = args if isinstance(args, str) else None
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            parsed_args = loose_args(args)
            return Outcome(
                CallStatus.INVALID,
                name,
                parsed_args,
                message=f"unknown tool {name!r}; the tools are: {known}",
                tool_call_id=tool_call_id,
                error=UnknownTool(f"unknown tool {name!r}"),
            )
        decoded = _decode_args(args)
        if isinstance(decoded, str):
            return _invalid(tool, {}, tool_call_id, decoded)
        current = tracing.tracer()
        if current is None:  # the common case, kept free of tracing's cost
            return await self._run(
                tool,
                decoded,
                run=run,
                tool_call_id=tool_call_id,
                raw_args=raw,
                wait=wait,
                execute=execute,
            )
        with tracing.call_span(current, tool.name, tool_call_id, tool.description) as span:
            outcome = await self._run(
                tool,
                decoded,
                run=run,
                tool_call_id=tool_call_id,
                raw_args=raw,
                wait=wait,
                execute=execute,
            )
            tracing.finish(span, outcome)
            return outcome

    async def _hooks_answer(self, tool: GatedTool[Any, Any], call: ToolCall) -> HookResult:
        """The first hook's answer that is not None (a hook that raises asks a human)."""
        for hook in self._hooks:
            try:
                answer: HookResult = await resolve(hook, call)
            except Exception as exc:
                log.warning("signoff: hook %r failed for %s: %r", hook, tool.name, exc)
                return RequestApproval(reason=f"a before-tool hook failed: {exc!r}")
            if answer is not None:
                return answer
        return None

    async def _run(
        self,
        tool: GatedTool[Any, Any],
        args: dict[str, Any],
        *,
        run: Run | None,
        tool_call_id: str | None = None,
        raw_args: str | None = None,
        wait: bool = True,
        execute: bool = True,
    ) -> Outcome:
        try:
            kwargs, args_json = tool.schema.parse(args)
        except InvalidArguments as exc:
            return _invalid(tool, args, tool_call_id, exc.message, exc)
        call = ToolCall(
            tool.name,
            kwargs,
            args_json=args_json,
            raw_args=raw_args,
            tool_call_id=tool_call_id,
            run=run,
        )
        policy = tool.policy
        answer = await self._hooks_answer(tool, call)
        if isinstance(answer, Skip):
            return Outcome(
                CallStatus.SKIPPED,
                tool.name,
                call.args_json,
                result=answer.result,
                tool_call_id=tool_call_id,
            )
        if isinstance(answer, Cancel):
            return Outcome(
                CallStatus.CANCELLED,
                tool.name,
                call.args_json,
                message=answer.message,
                tool_call_id=tool_call_id,
            )
        override = answer if isinstance(answer, RequestApproval) else None
        # the policy's deny holds whatever a hook says: a hook may ask more, never less.
        # A policy that reads no history goes straight to its verdict: no frame in between
        if policy.history_lookback is None:
            verdict, reserved = await policy.verdict(call), None
        else:
            verdict, reserved = await self._reserve_and_judge(policy, call)
        if tool.name in self.config.shadow_tools:
            # shadow mode never blocks, not even a deny: it records what would have happened
            # (and runs all the same, so its reservation stands: its limits count it)
            await self._record_shadow(tool, call, policy, verdict, override)
            return await self._execute(tool, call, kwargs, execute=execute)
        if verdict.kind is VerdictKind.DENY:
            await self._unreserve(call, reserved)
            return await self._denied(tool, call, policy)
        if override is None and verdict.kind is VerdictKind.RUN:
            # a reservation stands: it is the ledger's record that the call ran unasked
            return await self._execute(tool, call, kwargs, execute=execute)
        note = None if override is not None else verdict.note
        # the reservation goes once the request exists: never a moment with neither counted
        submitted = None if reserved is None else partial(self._unreserve, call, reserved)
        return await self._ask(
            tool, call, policy, override, note, wait=wait, execute=execute, submitted=submitted
        )


def seen_of(request: str | ApprovalRequest, seen_digest: str | None) -> tuple[str, str | None]:
    if isinstance(request, ApprovalRequest):
        return request.id, seen_digest or request.args_digest
    return request, seen_digest


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _decode_args(args: Mapping[str, Any] | str | None) -> dict[str, Any] | str:
    """The arguments as a dict, or (a string) why they are not a JSON object."""
    if not isinstance(args, str):
        return dict(args or {})
    try:
        decoded = json.loads(args, parse_constant=_not_a_number) if args.strip() else {}
    except ValueError as exc:
        return f"arguments are not valid JSON: {exc}"
    if not isinstance(decoded, dict):
        return "arguments must be a JSON object"
    return decoded


def _invalid(
    tool: GatedTool[Any, Any],
    args: Mapping[str, Any],
    tool_call_id: str | None,
    message: str,
    error: SignoffError | None = None,
) -> Outcome:
    return Outcome(
        CallStatus.INVALID,
        tool.name,
        dict(args),
        message=message,
        tool_call_id=tool_call_id,
        error=error or InvalidArguments(message),
    )
