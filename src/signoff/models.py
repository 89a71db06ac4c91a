"""The domain's values.

Anything that crosses the wire (the approval request and its parts) is a frozen pydantic
model, so that one definition gives validation, JSON and the OpenAPI schema. Values that
stay inside a process (a principal, a tool call) are plain frozen dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signoff._util import new_id
from signoff.types import JSONObject

#: the longest a request may wait for a decision
MAX_TIMEOUT_S = 90 * 86400.0


class Status(StrEnum):
    """Where an approval request stands. Every status but ``pending`` is terminal."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    #: an approver answered in the tool's place: the tool did not run (``response``)
    RESPONDED = "responded"

    @property
    def terminal(self) -> bool:
        return self is not Status.PENDING


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RISK_ORDER.index(self)


_RISK_ORDER = [Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL]


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    #: answer the call without running the tool; the model receives the response
    RESPOND = "respond"


#: what approvers may do with a request (a policy's ``decisions``): ``edit`` is an approval
#: with modified arguments, allowed where ``editable`` names fields and this names ``edit``
DecisionName = Literal["approve", "edit", "reject", "respond"]
ALL_DECISIONS: tuple[DecisionName, ...] = ("approve", "edit", "reject", "respond")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Run(_Frozen):
    """The agent run a tool call belongs to."""

    agent_id: str = "agent"
    run_id: str | None = None
    session_id: str | None = None
    metadata: JSONObject = Field(default_factory=dict)


DEFAULT_RUN = Run()


class PolicySnapshot(_Frozen):
    """The approval rules fixed on a request when it was created."""

    min_role: str
    quorum: int = Field(default=1, ge=1)
    timeout_s: float = Field(gt=0, le=MAX_TIMEOUT_S)
    editable: list[str] = Field(default_factory=list)
    allow_self_approval: bool = False
    #: what approvers may do (requests stored before this field existed: everything)
    decisions: list[DecisionName] = Field(default_factory=lambda: list(ALL_DECISIONS))


class Decision(_Frozen):
    """One approver's decision on a request."""

    decision: DecisionKind
    by: str
    role: str | None = None
    reason: str | None = None
    modified_args: JSONObject | None = None
    at: datetime
    via: str = "api"
    #: digest of the arguments this approver approved (``final_args`` after their edits)
    args_digest: str | None = None
    #: the standing grant that made this approval (``via="grant"``), or that it made
    grant_id: str | None = None
    #: a ``respond`` decision's answer, given to the model as the tool's result
    response: Any = None


class Escalation(_Frozen):
    """An escalation step that fired: the request was still pending ``after`` its creation,
    so more channels were notified."""

    step: int
    at: datetime
    notify: list[str] = Field(default_factory=list)


class OutcomeRecord(_Frozen):
    """What happened when the tool ran after approval, as the agent reported it."""

    status: Literal["succeeded", "failed"]
    detail: Any = None
    at: datetime


class ApprovalRequest(_Frozen):
    """An approval request: docs/api.md "the request object", plus a few extras.

    Extras beyond the contract: ``args_schema`` (the tool's JSON schema, which edits are
    validated against), ``args_digest`` (the digest of ``final_args`` an approval is bound
    to), ``consumed_at`` (when the approved call was claimed for execution),
    ``idempotency_key``, ``channels`` and ``cancel_reason``.
    """

    id: str
    status: Status
    tool: str
    args: JSONObject
    final_args: JSONObject
    tool_call_id: str | None = None
    run: Run
    requested_by: str
    reason: str | None = None
    context: JSONObject = Field(default_factory=dict)
    risk: Risk = Risk.MEDIUM
    policy: PolicySnapshot
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decisions: list[Decision] = Field(default_factory=list)
    outcome: OutcomeRecord | None = None
    args_schema: JSONObject | None = None
    args_digest: str
    consumed_at: datetime | None = None
    idempotency_key: str | None = None
    channels: list[str] = Field(default_factory=list)
    #: why the request was cancelled, when whoever cancelled it said (the model is told)
    cancel_reason: str | None = None
    #: the escalation steps that fired while it was pending (config ``[[routes]] escalate``)
    escalations: list[Escalation] = Field(default_factory=list)
    #: an approved request's signed receipt: a compact JWS (EdDSA) over its id, tool, the
    #: digest of ``final_args``, the approvers and its validity (signoff.receipts)
    receipt: str | None = None
    #: a responded request's answer: what the model receives in place of the tool's result
    response: Any = None

    @property
    def approvals(self) -> list[Decision]:
        """Approvals that count toward the quorum: those of the current ``final_args``."""
        return [
            d
            for d in self.decisions
            if d.decision is DecisionKind.APPROVE and d.args_digest == self.args_digest
        ]

    @property
    def modified_fields(self) -> dict[str, tuple[Any, Any]]:
        """``{name: (proposed, approved)}`` for every argument an approver changed."""
        keys = self.args.keys() | self.final_args.keys()
        missing = object()
        changed = {}
        for key in sorted(keys):
            before, after = self.args.get(key, missing), self.final_args.get(key, missing)
            if before != after:
                changed[key] = (
                    None if before is missing else before,
                    None if after is missing else after,
                )
        return changed


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: an approver (with a role) or an agent.

    Comes only from an authenticated channel (a verified token, a dashboard session) or
    from trusted in-process code; never from a request body.
    """

    sub: str
    role: str | None = None
    kind: Literal["approver", "agent"] = "approver"
    #: verified token claims kept for the audit record (iss, jti, kid …)
    claims: JSONObject = field(default_factory=dict, compare=False)

    def audit_actor(self) -> JSONObject:
        actor: JSONObject = {"sub": self.sub, "kind": self.kind, "role": self.role}
        for key in ("iss", "jti", "kid"):
            if key in self.claims:
                actor[key] = self.claims[key]
        return actor


SYSTEM = Principal(sub="system:timeout", kind="approver")


class ToolCall:
    """One call the model made, with its arguments parsed by the tool's schema.

    It is the context every policy predicate, reason, reject message and hook receives
    (``ctx``): ``tool_name``, ``args`` (parsed: Python values), ``raw_args`` (the JSON text
    the model sent), ``tool_call_id`` (the provider's id), ``internal_call_id`` (ours) and
    ``run``. ``args_json`` holds the parsed arguments as JSON values, as they are stored.
    """

    __slots__ = ("_internal", "_raw", "args", "args_json", "run", "tool_call_id", "tool_name")

    def __init__(
        self,
        tool_name: str,
        args: JSONObject,
        *,
        args_json: JSONObject | None = None,
        raw_args: str | None = None,
        tool_call_id: str | None = None,
        internal_call_id: str | None = None,
        run: Run | None = None,
    ) -> None:
        self.tool_name = tool_name
        self.args = args
        self.args_json = args if args_json is None else args_json
        self._raw = raw_args
        self.tool_call_id = tool_call_id
        self._internal = internal_call_id
        self.run = run if run is not None else DEFAULT_RUN

    @property
    def raw_args(self) -> str:
        if self._raw is None:
            self._raw = json.dumps(self.args_json, ensure_ascii=False)
        return self._raw

    @property
    def internal_call_id(self) -> str:
        if self._internal is None:
            self._internal = new_id("call")
        return self._internal

    def __repr__(self) -> str:
        return (
            f"ToolCall({self.tool_name!r}, {self.args_json!r}, tool_call_id={self.tool_call_id!r})"
        )


class RequestSpec(_Frozen):
    """What an agent asks for when it submits a call for approval (POST /v1/requests)."""

    tool: str = Field(min_length=1, max_length=200)
    args: JSONObject = Field(default_factory=dict)
    tool_call_id: str | None = Field(default=None, max_length=500)
    #: the run the call belongs to; without one, the run is the agent's own (its token's sub)
    run: Run | None = None
    reason: str | None = Field(default=None, max_length=10_000)
    context: JSONObject = Field(default_factory=dict)
    risk: Risk = Risk.MEDIUM
    policy: PolicySpec | None = None
    args_schema: JSONObject | None = None
    idempotency_key: str | None = Field(default=None, max_length=500)
    channels: list[str] = Field(default_factory=list)


class PolicySpec(_Frozen):
    """The policy an agent proposes; the server's config is a floor on top (docs/configuration.md).
    A field left out is not proposed: the config's value (or the default) applies."""

    min_role: str | None = Field(default=None, max_length=200)
    quorum: int | None = Field(default=None, ge=1, le=100)
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    editable: list[str] | None = Field(default=None, max_length=1000)
    allow_self_approval: bool | None = None
    decisions: list[DecisionName] | None = Field(default=None, min_length=1, max_length=4)


RequestSpec.model_rebuild()


class Page(_Frozen):
    items: list[ApprovalRequest]
    next_cursor: str | None = None


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
