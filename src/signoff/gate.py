"""The Gate: where a model's tool call meets its policy and, when needed, a human.

    call ─▶ validate args (the tool's schema) ─▶ hooks ─▶ policy: run │ deny │ ask
    ask ─▶ submit ─▶ wait for the decision ─▶ approved: consume once ─▶ run with final_args
                                                                     ─▶ record the outcome
                                           ─▶ otherwise: tell the model why (docs/guide.md)

``gate.call`` never raises for a call that did not run: it returns an :class:`Outcome`
whose ``to_model()`` is what the model should see. Calling a gated tool directly
(``await issue_refund(...)``) returns the tool's result or raises :class:`Rejected`,
:class:`ApprovalTimeout` or :class:`Cancelled`.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from signoff.approvals import Approvals, LocalApprovals
from signoff.call_path import CallPath, seen_of
from signoff.config import DEFAULT_SERVER_URL, Config, Settings, config_from
from signoff.connect import connect, data_dir, signing_keys
from signoff.errors import ConfigError
from signoff.hooks import Hook
from signoff.models import ApprovalRequest, DecisionKind, Principal, Run
from signoff.policy import Policy
from signoff.service import ApprovalService
from signoff.tools import GatedTool, running
from signoff.types import JSONObject

if TYPE_CHECKING:
    from signoff.channels.base import ChannelContext
    from signoff.delivery import ChannelRuntime

__all__ = ["Gate", "GatedTool", "running"]

P = ParamSpec("P")
R = TypeVar("R")


class Gate(CallPath):
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
        grant: JSONObject | None = None,
    ) -> ApprovalRequest:
        """Approve (optionally with edited arguments). Raises Forbidden, Conflict, InvalidEdit.

        Pass the request as you read it (an :class:`ApprovalRequest`), or give the
        ``seen_digest`` of the arguments you looked at: the approval then counts only for
        those arguments (:class:`Conflict` if another approver changed them meanwhile).
        ``grant={"ttl": "1h", "scope": "identical" | "tool"}`` also approves the same agent's
        later calls of the tool until then (docs/guide.md, "Standing grants")."""
        await self.start()
        request_id, seen = seen_of(request, seen_digest)
        return await self.approvals.decide(
            request_id, by, DecisionKind.APPROVE, reason, modified_args, seen, grant
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
        request_id, seen = seen_of(request, seen_digest)
        return await self.approvals.decide(request_id, by, DecisionKind.REJECT, reason, None, seen)

    async def respond(
        self,
        request: str | ApprovalRequest,
        response: Any,
        *,
        by: Principal | None = None,
        reason: str | None = None,
        seen_digest: str | None = None,
    ) -> ApprovalRequest:
        """Answer the call in the tool's place: the tool does not run and the model receives
        ``response`` (JSON) as its result. Raises Forbidden (role too low, or the policy's
        ``decisions`` leave out ``respond``), Conflict, InvalidArguments (not storable JSON)."""
        await self.start()
        request_id, seen = seen_of(request, seen_digest)
        return await self.approvals.decide(
            request_id, by, DecisionKind.RESPOND, reason, None, seen, response=response
        )

    async def cancel(
        self, request_id: str, *, run: Run | None = None, reason: str | None = None
    ) -> ApprovalRequest:
        """Cancel a pending request this agent made."""
        await self.start()
        if run is None:
            run = (await self.approvals.get(request_id)).run
        return await self.approvals.cancel(request_id, run, reason)


def approvals_for(
    target: str | Approvals | None,
    *,
    token: str | None = None,
    approver_token: str | None = None,
    config: Config,
) -> Approvals:
    """What a Gate given ``target`` talks to: ``http(s)://…`` a server (``token`` is the
    agent's, default ``SIGNOFF_TOKEN``); any other URL a service in this process on
    :func:`signoff.connect.connect`'s store and bus (default ``SIGNOFF_DB``)."""
    if isinstance(target, Approvals):
        return target
    if target is not None and target.startswith(("http://", "https://")):
        from signoff.remote import RemoteApprovals

        token = token or Settings.from_env().token
        return RemoteApprovals(target, token=token, approver_token=approver_token)
    url = target or Settings.from_env().db_url
    backends = connect(url)
    keys = signing_keys(url, config)
    service = ApprovalService(backends.store, backends.bus, config=config, keys=keys)
    if config.channels:
        return _with_channels(service, url)
    return LocalApprovals(service)


def _with_channels(service: ApprovalService, url: str) -> Approvals:
    """The embedded service with the config's channels: the delivery worker, the escalator
    and each channel's outbound side start and stop with it. Their inbound HTTP routes
    (webhook callbacks, Slack's interactivity) need a server and are not served here."""
    # imported only when channels are configured: a plain gate never loads their clients
    # (nor the token library)
    from signoff.auth import Verifier, load_or_create_key
    from signoff.delivery import ChannelRuntime, build_channels, make_context

    config = service.config
    secret = Settings.from_env().secret
    if secret or not url.startswith("memory:"):
        # the key a `signoff serve` on the same store uses: the links a notice carries
        # (a webhook's callbackUrl) then work at that server's public_url
        key = load_or_create_key(data_dir(url), secret)
    else:
        key = secrets.token_urlsafe(32).encode()  # a throwaway store, a throwaway key
    verifier = Verifier(key, config.auth, config.roles)
    runtime = ChannelRuntime(service, build_channels(config))  # a bad channel fails here
    address = config.server.public_url or DEFAULT_SERVER_URL
    return _ChannelledApprovals(service, runtime, make_context(service, verifier, key, address))


class _ChannelledApprovals(LocalApprovals):
    def __init__(
        self, service: ApprovalService, runtime: ChannelRuntime, context: ChannelContext
    ) -> None:
        super().__init__(service)
        self.runtime = runtime
        self.context = context

    async def start(self) -> None:
        await super().start()
        try:
            await self.runtime.start(self.context)
        except BaseException:
            await super().aclose()
            raise

    async def aclose(self) -> None:
        try:
            await self.runtime.aclose()
        finally:
            await super().aclose()
