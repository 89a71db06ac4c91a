"""The HTTP API's request and response bodies (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool

from signoff.grants import Grant
from signoff.models import ApprovalRequest, RunRecord
from signoff.problems import Problem
from signoff.types import JSONObject


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: a reason the model can read: something other than white space
Reason = Annotated[str, Field(min_length=1, max_length=10_000, pattern=r"\S")]


#: the ``args_digest`` of the request as the approver was shown it
SeenDigest = Annotated[str, Field(min_length=1, max_length=100)]


class GrantIn(_In):
    """A standing grant asked for with an approval (CONTRACT.md §9; bounds: docs/api.md)."""

    ttl: (
        Annotated[str, Field(min_length=1, max_length=20)] | Annotated[int, Field(ge=0, le=10**9)]
    ) = Field(description='How long: "90s", "30m", "1h", "2d" or seconds (1 minute to 7 days)')
    scope: Literal["identical", "tool"] = "identical"


class ApproveIn(_In):
    decision: Literal["approve"]
    reason: str | None = Field(default=None, max_length=10_000)
    modified_args: JSONObject | None = None
    seen_digest: SeenDigest | None = None
    #: also approve the same agent's later calls of the tool for a time (no edits)
    grant: GrantIn | None = None


class GrantOut(Grant):
    """A standing grant, and whether it is live now."""

    active: bool


class GrantsOut(BaseModel):
    items: list[GrantOut]


class RejectIn(_In):
    decision: Literal["reject"]
    reason: Reason
    seen_digest: SeenDigest | None = None


class RespondIn(_In):
    decision: Literal["respond"]
    #: what the model receives in place of the tool's result (any JSON but null)
    response: Any = Field(description="The tool's answer, as the approver writes it (JSON).")
    reason: str | None = Field(default=None, max_length=10_000)
    seen_digest: SeenDigest | None = None


class SignalIn(_In):
    """The seed guides' signal shape: ``{"approved": …, "reason": …, "modifiedParams": …}``."""

    #: true or false itself: "yes", 1 or "on" approve nothing (no lax coercion here)
    approved: StrictBool
    reason: str | None = Field(default=None, max_length=10_000)
    modifiedParams: JSONObject | None = None  # the seed's own field name
    seen_digest: SeenDigest | None = None

    def as_decision(self) -> dict[str, Any]:
        """The same decision in the ``decision`` shape (validated as such by the caller)."""
        given = {
            "reason": self.reason,
            "modified_args": self.modifiedParams,
            "seen_digest": self.seen_digest,
        }
        body: dict[str, Any] = {"decision": "approve" if self.approved else "reject"}
        body.update({key: value for key, value in given.items() if value is not None})
        return body


class DecisionIn(
    RootModel[Annotated[ApproveIn | RejectIn | RespondIn, Field(discriminator="decision")]]
):
    """Approve (optionally with edited arguments), reject with a reason, or respond: answer
    in the tool's place (the tool does not run; the model receives ``response``)."""


class DecisionBody(RootModel[DecisionIn | SignalIn]):
    """A decision (``decision``: approve, reject or respond), or the seed guides' signal
    shape."""


class BatchApproveIn(_In):
    ids: list[str] = Field(min_length=1, max_length=200)
    decision: Literal["approve"]
    reason: str | None = Field(default=None, max_length=10_000)
    #: per request id, the ``args_digest`` the approver was shown
    seen_digests: dict[str, SeenDigest] | None = Field(default=None, max_length=200)
    #: also grant, for each approved request, the same agent's later calls (no edits)
    grant: GrantIn | None = None


class BatchRejectIn(_In):
    ids: list[str] = Field(min_length=1, max_length=200)
    decision: Literal["reject"]
    reason: Reason
    seen_digests: dict[str, SeenDigest] | None = Field(default=None, max_length=200)


class BatchRespondIn(_In):
    ids: list[str] = Field(min_length=1, max_length=200)
    decision: Literal["respond"]
    #: what the model receives in place of each tool's result (any JSON but null)
    response: Any = Field(description="The tools' answer, as the approver writes it (JSON).")
    reason: str | None = Field(default=None, max_length=10_000)
    seen_digests: dict[str, SeenDigest] | None = Field(default=None, max_length=200)


class BatchIn(
    RootModel[
        Annotated[BatchApproveIn | BatchRejectIn | BatchRespondIn, Field(discriminator="decision")]
    ]
):
    """Decide several requests the same way; each succeeds or fails on its own."""


class BatchResult(BaseModel):
    id: str
    status: Literal[200, 403, 404, 409, 422]
    request: ApprovalRequest | None = None
    problem: Problem | None = None


class BatchOut(BaseModel):
    results: list[BatchResult]


class CancelIn(_In):
    reason: str | None = Field(default=None, max_length=10_000)


class OutcomeIn(_In):
    status: Literal["succeeded", "failed"]
    detail: Any = None


class AuditEventOut(BaseModel):
    type: str
    request_id: str | None
    actor: JSONObject
    at: str
    via: str | None
    data: JSONObject
    position: int = Field(description="The event's place in the log (also its live event id).")
    seq: int | None = Field(description="Its place in the sealed chain; null until sealed.")
    prev_hash: str | None
    hash: str | None


class AuditOut(BaseModel):
    items: list[AuditEventOut]
    next_after: int | None = Field(
        description="Pass as ?after= for the next page; null when there is none."
    )


class CheckpointOut(BaseModel):
    size: int = Field(description="How many events the chain had.")
    head: str = Field(description="The chain hash of the last of them.")
    position: int
    at: str
    kid: str = Field(description="The signing key's id (RFC 7638 thumbprint).")
    signature: str = Field(description="Ed25519, base64url, over the checkpoint's payload.")


class CheckpointsOut(BaseModel):
    items: list[CheckpointOut]
    next_after: int | None


class VerifyIn(_In):
    against: CheckpointOut = Field(
        description="A checkpoint exported earlier: the log must still contain what it signed."
    )


class VerifyOut(BaseModel):
    ok: bool
    events: int
    head: str
    sealed: int = 0
    unsealed: int = 0
    checkpoint: JSONObject | None = None
    first_bad: JSONObject | None = None
    mismatched: int = 0
    mismatches: list[JSONObject] = Field(default_factory=list)


class KeysOut(BaseModel):
    keys: list[dict[str, str]] = Field(
        description="JWKS (RFC 7517): the Ed25519 keys whose checkpoints verify."
    )


class TicketOut(BaseModel):
    ticket: str
    expires_in: int


class HealthOut(BaseModel):
    status: str


class MeOut(BaseModel):
    """Who is calling, and the role ladder their role sits on (the dashboard marks what
    they may not decide)."""

    sub: str
    kind: Literal["agent", "approver"]
    role: str | None
    roles: list[str] = Field(description="The role ladder, lowest first.")
    auditor: bool = Field(description="Whether this caller may read the audit log.")
    name: str | None = Field(default=None, description="A display name, where one is known.")
    server_time: datetime = Field(description="The server's clock, for countdowns.")


class Timing(BaseModel):
    decisions: int
    approved: int
    #: answered in the tool's place (``respond``): a decision, neither an approval nor a
    #: rejection
    responded: int = 0
    approval_rate: float | None = Field(description="approved / decisions; null with none.")
    median_s: float | None = Field(description="Median seconds from request to decision.")
    p90_s: float | None = Field(description="90th percentile of the same.")


class ToolStats(Timing):
    tool: str
    requests: int
    rejected: int
    expired: int
    cancelled: int


class ApproverStats(Timing):
    approver: str
    rejected: int


class DayStats(Timing):
    day: str = Field(description="The UTC day (YYYY-MM-DD) the decisions were made.")


class ShadowToolStats(BaseModel):
    tool: str
    run: int = Field(description="Calls the policy would have run without asking.")
    ask: int = Field(description="Calls the policy would have asked about.")
    deny: int = Field(description="Calls the policy would have denied.")


class ShadowCall(BaseModel):
    tool: str
    verdict: Literal["run", "ask", "deny"]
    min_role: str | None
    quorum: int
    reason: str | None
    agent_id: str
    at: datetime


class ShadowStats(BaseModel):
    """Shadow-mode tools' calls in the period: they ran, and this is what their policy would
    have done (docs/guide.md, "Changing a policy safely")."""

    calls: int
    tools: list[ShadowToolStats]
    recent: list[ShadowCall] = Field(description="The newest few, newest first.")


class StatsOut(BaseModel):
    since: datetime
    until: datetime
    requests: int = Field(description="Requests created in the period.")
    overall: Timing
    tools: list[ToolStats]
    approvers: list[ApproverStats]
    days: list[DayStats]
    truncated: bool = Field(description="True when the period held more requests than counted.")
    shadow: ShadowStats = Field(default_factory=lambda: ShadowStats(calls=0, tools=[], recent=[]))


class RunsOut(BaseModel):
    items: list[RunRecord]


class DeliveryOut(BaseModel):
    id: str = Field(description="The delivery's id: a webhook's webhook-id, a message's id.")
    request_id: str
    channel: str
    type: str = Field(description="approval_request, approval_decided, … (docs/channels.md)")
    step: int | None = Field(description="The escalation step of an approval_escalated one.")
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: str
    due_at: str = Field(description="When it is (or was) next tried.")
    delivered_at: str | None
    last_error: str | None = Field(description="Why the last attempt failed.")
    receipt: dict[str, Any] | None = Field(description="What the channel kept about it.")


class DeliveriesOut(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None = Field(
        description="Pass as ?before= for the next (older) page; null when there is none."
    )
