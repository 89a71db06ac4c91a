"""The Gate: where a model's tool call meets its policy and, when needed, a human.

    call ─▶ validate args (the tool's schema) ─▶ hooks ─▶ policy: run │ deny │ ask
    ask ─▶ submit ─▶ wait for the decision ─▶ approved: consume once ─▶ run with final_args
                                                                     ─▶ record the outcome
                                           ─▶ otherwise: tell the model why (CONTRACT §4)

``gate.call`` never raises for a call that did not run: it returns an :class:`Outcome`
whose ``to_model()`` is what the model should see. Calling a gated tool directly
(``await issue_refund(...)``) returns the tool's result or raises :class:`Rejected`,
:class:`ApprovalTimeout` or :class:`Cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

from signoff._util import human_duration, jsonable, loose_args, parse_duration, resolve
from signoff.approvals import Approvals, approvals_for
from signoff.canonical import digest
from signoff.config import Config, config_from
from signoff.errors import (
    ConfigError,
    Conflict,
    InvalidArguments,
    PolicyDenied,
    SignoffError,
    UnknownTool,
    UsageError,
)
from signoff.hooks import Cancel, Hook, HookResult, RequestApproval, Skip
from signoff.models import (
    DEFAULT_RUN,
    ApprovalRequest,
    DecisionKind,
    PolicySpec,
    Principal,
    RequestSpec,
    Run,
    Status,
    ToolCall,
)
from signoff.outcome import ApprovalTimeout, CallStatus, Cancelled, NotRun, Outcome, Rejected
from signoff.policy import Policy, VerdictKind
from signoff.schema import ArgsSchema, JsonArgsSchema
from signoff.types import JSONObject

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "signoff_run", default=None
)


@contextlib.contextmanager
def running(run: Run) -> Iterator[Run]:
    """Attribute gated calls made directly (``await tool(...)``) inside the block to ``run``."""
    token = _current_run.set(run)
    try:
        yield run
    finally:
        _current_run.reset(token)


class GatedTool(Generic[P, R]):
    """A tool behind the gate. Call it like the function (always awaited).

    A tool made with :meth:`Gate.tool` takes its argument schema from the function's
    signature; one made with :meth:`Gate.add_tool` is described by a JSON Schema, and its
    function (if any) receives the arguments as one dict. A tool without a function is run
    elsewhere (an MCP server, a framework's own executor): the gate only authorizes it
    (:meth:`Gate.authorize`) and records what happened (:meth:`Gate.report`).
    """

    def __init__(
        self,
        gate: Gate,
        fn: Callable[P, R] | Callable[P, Awaitable[R]] | None,
        *,
        name: str,
        description: str,
        policy: Policy | None,
        input_schema: JSONObject | None = None,
    ) -> None:
        self.gate = gate
        self.fn = fn
        self.name = name
        self.description = description
        #: the policy as written on the tool (None: none given)
        self.declared_policy = policy
        self.schema: ArgsSchema | JsonArgsSchema
        if input_schema is not None:
            self.schema = JsonArgsSchema(input_schema, name)
        elif fn is None:
            raise ConfigError(f"tool {name!r} needs a function or an input schema")
        else:
            self.schema = ArgsSchema(fn, name)
        #: the function takes the arguments as one dict (a JSON Schema tool)
        self._takes_dict = input_schema is not None
        target = inspect.unwrap(fn) if fn is not None else None
        self.is_async = target is not None and inspect.iscoroutinefunction(target)
        self._signature = inspect.signature(fn) if fn is not None and not self._takes_dict else None
        if fn is not None:
            functools.update_wrapper(self, fn)

    @property
    def policy(self) -> Policy:
        """The effective policy: the tool's own, no weaker than the gate's config for it."""
        return self.gate.policy_for(self)

    @property
    def json_schema(self) -> JSONObject:
        return self.schema.json_schema

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if args:
            if self._signature is None:
                raise UsageError(f"{self.name} takes keyword arguments only")
            bound = self._signature.bind_partial(*args, **kwargs)
            kwargs = bound.arguments  # type: ignore[assignment]
        outcome = await self.gate._run(self, dict(kwargs), run=_current_run.get())
        return _unwrap(outcome)  # type: ignore[no-any-return]

    async def invoke(self, kwargs: Mapping[str, Any]) -> Any:
        """Run the tool body itself, without the gate."""
        if self.fn is None:
            raise UsageError(
                f"tool {self.name!r} has no function here: authorize it with gate.authorize, "
                "run it where it lives, and report with gate.report"
            )
        fn: Callable[..., Any] = self.fn
        call: Callable[[], Any] = (
            functools.partial(fn, dict(kwargs))
            if self._takes_dict
            else functools.partial(fn, **kwargs)
        )
        if self.is_async:
            return await call()
        result = await asyncio.to_thread(call)  # a sync tool may block; keep the loop free
        if inspect.isawaitable(result):  # a sync-looking wrapper around a coroutine function
            result = await result
        return result

    def __repr__(self) -> str:
        return f"<GatedTool {self.name}>"


def _unwrap(outcome: Outcome) -> Any:
    status = outcome.status
    if status is CallStatus.EXECUTED or status is CallStatus.SKIPPED:
        return outcome.result
    if status is CallStatus.FAILED and outcome.error is not None:
        raise outcome.error
    if status is CallStatus.REJECTED:
        raise Rejected(outcome)
    if status is CallStatus.TIMEOUT:
        raise ApprovalTimeout(outcome)
    if status is CallStatus.CANCELLED:
        raise Cancelled(outcome)
    if isinstance(outcome.error, SignoffError):
        raise outcome.error
    raise NotRun(outcome)


class Gate:
    """Puts a human sign-off in front of risky tool calls.

    ``Gate()`` or ``Gate("sqlite:///path.db")`` runs the approval service in this process
    (``memory://`` for a throwaway one); ``Gate("http://host:8000", token=AGENT_JWT)`` talks
    to a ``signoff serve`` elsewhere. The same methods work either way.
    """

    def __init__(
        self,
        target: str | Approvals | None = None,
        *,
        token: str | None = None,
        approver_token: str | None = None,
        config: Config | str | None = None,
    ) -> None:
        self.config = config_from(config)
        self.roles = self.config.roles
        self.approvals = approvals_for(
            target, token=token, approver_token=approver_token, config=self.config
        )
        self.tools: dict[str, GatedTool[Any, Any]] = {}
        self._hooks: list[Hook] = []
        self._policies: dict[str, Policy] = {}
        self._started_on: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None

    # -- declaring tools ------------------------------------------------------------------

    @overload
    def tool(self, fn: Callable[P, Awaitable[R]], /) -> GatedTool[P, R]: ...
    @overload
    def tool(self, fn: Callable[P, R], /) -> GatedTool[P, R]: ...
    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        policy: Policy | None = None,
    ) -> Callable[[Callable[P, Any]], GatedTool[P, Any]]: ...

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        policy: Policy | None = None,
    ) -> Any:
        """Put a function behind the gate: ``@gate.tool`` or ``@gate.tool(policy=Policy(…))``.

        Without a policy (here or in the config file) every call needs approval.
        """

        def register(func: Callable[..., Any]) -> GatedTool[Any, Any]:
            tool_name = name or func.__name__
            if tool_name in self.tools:
                raise ConfigError(f"a tool named {tool_name!r} is already gated")
            text = description or inspect.getdoc(func) or tool_name.replace("_", " ")
            gated: GatedTool[Any, Any] = GatedTool(
                self, func, name=tool_name, description=text, policy=policy
            )
            if policy is not None and policy.min_role is not None:
                self.roles.check(policy.min_role)
            self.tools[tool_name] = gated
            return gated

        return register if fn is None else register(fn)

    def add_tool(
        self,
        name: str,
        fn: Callable[[JSONObject], Any] | None = None,
        *,
        input_schema: JSONObject,
        description: str | None = None,
        policy: Policy | None = None,
    ) -> GatedTool[..., Any]:
        """Put a tool described by a JSON Schema behind the gate.

        For tools that are not Python functions with a signature: an MCP server's tools, a
        framework's tools, a tool another process runs. ``fn`` (sync or async) receives the
        validated arguments as one dict. Without ``fn`` the tool runs elsewhere: use
        :meth:`authorize` to ask, and :meth:`report` to record what happened.
        """
        if name in self.tools:
            raise ConfigError(f"a tool named {name!r} is already gated")
        if policy is not None and policy.min_role is not None:
            self.roles.check(policy.min_role)
        gated: GatedTool[..., Any] = GatedTool(
            self,
            fn,
            name=name,
            description=description or name.replace("_", " "),
            policy=policy,
            input_schema=input_schema,
        )
        self.tools[name] = gated
        return gated

    def hook(self, fn: Hook) -> Hook:
        """Register a before-tool hook (see :mod:`signoff.hooks`); usable as a decorator."""
        self._hooks.append(fn)
        return fn

    def policy_for(self, tool: GatedTool[Any, Any]) -> Policy:
        """The policy the gate evaluates for ``tool``: its own (or, without one, the
        config's, or "always ask"), with the config's conditions joined to it. The terms a
        request is held to are floored by the approval service, on every path alike."""
        policy = self._policies.get(tool.name)
        if policy is None:
            operator = self.config.operator_policy(tool.name)
            declared = tool.declared_policy
            if declared is None:
                policy = operator if operator is not None else Policy()
            else:
                policy = declared.under(operator)
            self._policies[tool.name] = policy
        return policy

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._started_on is loop:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started_on is loop:
                return
            if self._started_on is not None:
                # the gate was used under an event loop that is gone (asyncio.run twice)
                await self.approvals.aclose()
            await self.approvals.start()
            self._started_on = loop

    async def aclose(self) -> None:
        if self._started_on is not None:
            await self.approvals.aclose()
            self._started_on = None

    async def __aenter__(self) -> Gate:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the agent's side -----------------------------------------------------------------

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
        if isinstance(answer, RequestApproval):
            return True
        return (await tool.policy.verdict(call)).kind is VerdictKind.ASK

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
        return await self._run(
            tool,
            decoded,
            run=run,
            tool_call_id=tool_call_id,
            raw_args=raw,
            wait=wait,
            execute=execute,
        )

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
        # the policy's deny holds whatever a hook says: a hook may ask more, never less
        verdict = await policy.verdict(call)
        if verdict.kind is VerdictKind.DENY:
            return await self._denied(tool, call, policy)
        if override is None and verdict.kind is VerdictKind.RUN:
            return await self._execute(tool, call, kwargs, execute=execute)
        note = None if override is not None else verdict.note
        return await self._ask(tool, call, policy, override, note, wait=wait, execute=execute)

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
        try:
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
    ) -> Outcome:
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
            ),
            args_schema=tool.json_schema,
            channels=list(policy.channels),
        )
        try:
            await self.start()
            request = await self.approvals.submit(spec)
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
                request = await self.approvals.wait(request_id, run)
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

        if request.status is Status.REJECTED:
            reject_message = await policy.reject_text(call)
            reasons = [d.reason for d in request.decisions if d.decision is DecisionKind.REJECT]
            reason = reasons[-1] if reasons and reasons[-1] else None
            if reject_message and reason:
                message = f"{reject_message} Reason: {reason}"
            else:
                message = reject_message or reason or "The approver rejected this call."
            return result(CallStatus.REJECTED, message)
        if request.status is Status.EXPIRED:
            timeout = human_duration(request.policy.timeout_s)
            return result(CallStatus.TIMEOUT, f"Approval request timed out after {timeout}")
        if request.status is Status.CANCELLED:
            why = f" Reason: {request.cancel_reason}" if request.cancel_reason else ""
            return result(CallStatus.CANCELLED, f"The approval request was cancelled.{why}")
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

    async def pending(self) -> list[ApprovalRequest]:
        await self.start()
        return await self.approvals.pending()

    async def get(self, request_id: str) -> ApprovalRequest:
        await self.start()
        return await self.approvals.get(request_id)

    async def approve(
        self,
        request: str | ApprovalRequest,
        *,
        by: Principal | None = None,
        reason: str | None = None,
        modified_args: JSONObject | None = None,
        seen_digest: str | None = None,
    ) -> ApprovalRequest:
        """Approve (optionally with edited arguments). Raises Forbidden, Conflict, InvalidEdit.

        Pass the request as you read it (an :class:`ApprovalRequest`), or give the
        ``seen_digest`` of the arguments you looked at: the approval then counts only for
        those arguments (:class:`Conflict` if another approver changed them meanwhile)."""
        await self.start()
        request_id, seen = _seen(request, seen_digest)
        return await self.approvals.decide(
            request_id, by, DecisionKind.APPROVE, reason, modified_args, seen
        )

    async def reject(
        self,
        request: str | ApprovalRequest,
        *,
        by: Principal | None = None,
        reason: str,
        seen_digest: str | None = None,
    ) -> ApprovalRequest:
        """Reject with a reason (the model is told it). Raises Forbidden, Conflict."""
        await self.start()
        request_id, seen = _seen(request, seen_digest)
        return await self.approvals.decide(request_id, by, DecisionKind.REJECT, reason, None, seen)

    async def cancel(
        self, request_id: str, *, run: Run | None = None, reason: str | None = None
    ) -> ApprovalRequest:
        """Cancel a pending request this agent made."""
        await self.start()
        if run is None:
            run = (await self.approvals.get(request_id)).run
        return await self.approvals.cancel(request_id, run, reason)


def _seen(request: str | ApprovalRequest, seen_digest: str | None) -> tuple[str, str | None]:
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
