"""The second half of a gated call: once a human must decide. Submit, wait, then claim the
approval once and run with exactly the approved arguments (or say why not), and record what
happened. A part of :class:`signoff.gate.Gate`, beside :mod:`signoff.call_path`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from signoff import receipts, tracing
from signoff._util import human_duration, jsonable, parse_duration
from signoff.approvals import Approvals
from signoff.canonical import digest
from signoff.config import Config
from signoff.errors import (
    Conflict,
    InvalidArguments,
    PolicyDenied,
    SignoffError,
)
from signoff.hooks import RequestApproval
from signoff.models import (
    DEFAULT_RUN,
    ApprovalRequest,
    DecisionKind,
    PolicySpec,
    RequestSpec,
    Status,
    ToolCall,
)
from signoff.outcome import CallStatus, Outcome
from signoff.policy import Policy
from signoff.tools import GatedTool

log = logging.getLogger(__name__)


class Settlement:
    """The Gate's approval path (a part of :class:`signoff.gate.Gate`)."""

    config: Config
    approvals: Approvals

    async def start(self) -> None:
        raise NotImplementedError  # the Gate's

    async def _denied(
        self, tool: GatedTool[Any, Any], call: ToolCall, policy: Policy, message: str | None = None
    ) -> Outcome:
        text = message or await policy.reject_text(call) or "This call is not allowed by policy."
        return Outcome(
            CallStatus.REJECTED,
            tool.name,
            call.args_json,
            message=text,
            tool_call_id=call.tool_call_id,
        )

    async def _execute(
        self,
        tool: GatedTool[Any, Any],
        call: ToolCall,
        kwargs: Mapping[str, Any],
        request: ApprovalRequest | None = None,
        *,
        execute: bool = True,
    ) -> Outcome:
        final = request.final_args if request is not None else call.args_json
        if not execute:
            return Outcome(
                CallStatus.AUTHORIZED,
                tool.name,
                call.args_json if request is None else request.args,
                final_args=final,
                request=request,
                tool_call_id=call.tool_call_id,
            )
        # the tool body may pass the approval's receipt on to the service it calls (set only
        # for approved calls: a call that needs no approval pays nothing for it)
        receipt = None if request is None else request.receipt
        token = None if receipt is None else receipts.running_with(receipt)
        traced = tracing.tracer()
        try:
            if traced is None:  # no `with` at all: a call let straight through pays nothing
                result = await tool.invoke(kwargs)
            else:
                with tracing.child("signoff.execute", traced):
                    result = await tool.invoke(kwargs)
        except Exception as exc:
            if request is not None:
                request = await self._report(request, "failed", {"error": repr(exc)}) or request
            return Outcome(
                CallStatus.FAILED,
                tool.name,
                call.args_json,
                final_args=final,
                executed_args=dict(kwargs),
                message=f"the tool failed: {exc!r}",
                request=request,
                tool_call_id=call.tool_call_id,
                error=exc,
            )
        finally:
            if token is not None:
                receipts.finished(token)
        if request is not None:
            request = await self._report(request, "succeeded", result) or request
        return Outcome(
            CallStatus.EXECUTED,
            tool.name,
            call.args_json,
            final_args=final,
            executed_args=dict(kwargs),
            result=result,
            request=request,
            tool_call_id=call.tool_call_id,
        )

    async def _report(
        self, request: ApprovalRequest, status: Literal["succeeded", "failed"], detail: Any
    ) -> ApprovalRequest | None:
        try:
            return await self.approvals.record_outcome(request, status, detail)
        except SignoffError as exc:
            # the tool has run: failing to record it must not hide its result
            log.error("signoff: could not record the outcome of %s: %s", request.id, exc)
            return None

    async def _ask(
        self,
        tool: GatedTool[Any, Any],
        call: ToolCall,
        policy: Policy,
        override: RequestApproval | None,
        note: str | None,
        *,
        wait: bool = True,
        execute: bool = True,
        submitted: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Ask a human; ``submitted`` runs once the request exists (or could not be made)."""
        reason = await policy.reason_text(call)
        context = await policy.context_for(call)
        min_role, risk, quorum = policy.min_role, policy.risk, policy.quorum
        timeout_s = policy.timeout_s
        if override is not None:
            reason = override.reason or reason
            min_role = override.min_role or min_role
            risk = override.risk or risk
            quorum = override.quorum or quorum
            if override.timeout is not None:
                timeout_s = parse_duration(override.timeout)
            context = {**context, **(override.context or {})}
        if note:
            context = {**context, "policy_note": note}
        spec = RequestSpec(
            tool=tool.name,
            args=call.args_json,
            tool_call_id=call.tool_call_id,
            # no run given: a server attributes the call to the agent's own token
            run=None if call.run is DEFAULT_RUN else call.run,
            reason=reason,
            context=jsonable(context),
            risk=risk,
            policy=PolicySpec(
                min_role=min_role,
                quorum=quorum,
                timeout_s=timeout_s,
                editable=None if policy.editable is None else list(policy.editable),
                allow_self_approval=policy.allow_self_approval,
                decisions=None if policy.decisions is None else list(policy.decisions),
            ),
            args_schema=tool.json_schema,
            channels=list(policy.channels),
        )
        try:
            await self.start()
            try:
                request = await self.approvals.submit(spec)
            finally:
                if submitted is not None:
                    await submitted()
            if request.status is Status.PENDING:
                if not wait:
                    return Outcome(
                        CallStatus.PENDING,
                        tool.name,
                        request.args,
                        final_args=request.final_args,
                        message="The call is waiting for an approver's decision.",
                        request=request,
                        tool_call_id=call.tool_call_id,
                    )
                # hold only the id while waiting: thousands of calls may wait at once
                request_id, run = request.id, request.run
                del spec, request, context, reason
                started = time.monotonic()
                with tracing.child("signoff.wait"):
                    request = await self.approvals.wait(request_id, run)
                tracing.note({"signoff.wait_ms": round((time.monotonic() - started) * 1000, 3)})
        except PolicyDenied as exc:
            # the server's own policy refuses the call outright
            return await self._denied(tool, call, policy, exc.message)
        except SignoffError as exc:
            # whatever kept us from a decision (server down, token refused), it is not one
            return Outcome(
                CallStatus.UNAVAILABLE,
                tool.name,
                call.args_json,
                message=f"the call was not run: approval could not be obtained ({exc.message})",
                tool_call_id=call.tool_call_id,
                error=exc,
            )
        return await self._settle(tool, call, policy, request, execute=execute)

    async def _settle(
        self,
        tool: GatedTool[Any, Any],
        call: ToolCall,
        policy: Policy,
        request: ApprovalRequest,
        *,
        execute: bool = True,
    ) -> Outcome:
        """Act on a decided request: run it once if approved, else say why it did not run."""

        def result(
            status: CallStatus,
            message: str | None = None,
            *,
            value: Any = None,
            error: BaseException | None = None,
        ) -> Outcome:
            return Outcome(
                status,
                tool.name,
                request.args,
                final_args=request.final_args,
                result=value,
                message=message,
                request=request,
                tool_call_id=call.tool_call_id,
                error=error,
            )

        if request.status is Status.RESPONDED:
            # answered in the tool's place: the model receives the approver's response
            return result(CallStatus.RESPONDED, value=request.response)
        if (ended := await _not_approved(request, policy, call)) is not None:
            return result(*ended)
        if request.status is not Status.APPROVED:
            # still pending after the wait returned: fail closed
            return result(CallStatus.UNAVAILABLE, "No decision was reached; the call was not run.")

        if request.outcome is not None:
            # this very call ran before (a retry or a resumed run): do not run it again
            ran_ok = request.outcome.status == "succeeded"
            status = CallStatus.EXECUTED if ran_ok else CallStatus.FAILED
            return result(status, "(result recorded earlier)", value=request.outcome.detail)
        try:
            request = await self.approvals.consume(request)
        except Conflict as exc:
            message = (
                "This approved call was already started once; it will not run again, "
                "and its result is unknown."
            )
            return result(CallStatus.ALREADY_CONSUMED, message, error=exc)
        except SignoffError as exc:
            return result(CallStatus.UNAVAILABLE, f"the call was not run: {exc.message}", error=exc)
        if digest(request.final_args) != request.args_digest:
            await self._report(request, "failed", {"error": "approval binding mismatch"})
            return result(
                CallStatus.INVALID, "the approved arguments do not match their approval; not run"
            )
        try:
            kwargs, _ = tool.schema.parse(request.final_args)
        except InvalidArguments as exc:
            await self._report(request, "failed", {"error": exc.message})
            message = f"the approved arguments are not valid: {exc.message}"
            return result(CallStatus.INVALID, message, error=exc)
        return await self._execute(tool, call, kwargs, request, execute=execute)

    # -- the approver's side --------------------------------------------------------------


async def _not_approved(
    request: ApprovalRequest, policy: Policy, call: ToolCall
) -> tuple[CallStatus, str] | None:
    """Why a request that ended without an approval did not run, in the model's terms."""
    if request.status is Status.REJECTED:
        reject_message = await policy.reject_text(call)
        reasons = [d.reason for d in request.decisions if d.decision is DecisionKind.REJECT]
        reason = reasons[-1] if reasons and reasons[-1] else None
        if reject_message and reason:
            message = f"{reject_message} Reason: {reason}"
        else:
            message = reject_message or reason or "The approver rejected this call."
        return CallStatus.REJECTED, message
    if request.status is Status.EXPIRED:
        timeout = human_duration(request.policy.timeout_s)
        return CallStatus.TIMEOUT, f"Approval request timed out after {timeout}"
    if request.status is Status.CANCELLED:
        why = f" Reason: {request.cancel_reason}" if request.cancel_reason else ""
        return CallStatus.CANCELLED, f"The approval request was cancelled.{why}"
    return None
