"""The request lifecycle: pure transitions over a request.

    submit ─▶ pending ─▶ decide ─┬▶ approved ─▶ consume (once) ─▶ record outcome
                                 └▶ rejected
              pending ─▶ expired (the sweeper, or anyone reading it after expires_at)
              pending ─▶ cancelled (the agent that made it)
              pending ─▶ escalated (still pending: more channels told; once per step)

Each function takes the request as stored (and what was asked, and the time) and returns
the :class:`Change` to write: the new state, its audit entries, its live events, or a
refusal (audited, then raised). Nothing here does I/O, reads a clock or trusts a payload:
the service authorizes reads, validates what needs a worker thread, applies these through
``store.transition`` (a compare-and-set), publishes, waits and sweeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from signoff._util import MAX_DETAIL_CHARS, jsonable, new_id
from signoff.audit import AuditEntry
from signoff.canonical import digest
from signoff.decisions import DecisionInput, disallowed
from signoff.errors import Conflict, Forbidden, InvalidEdit, SignoffError
from signoff.granting import grant_problem, with_grant
from signoff.models import (
    SYSTEM,
    ApprovalRequest,
    Decision,
    DecisionKind,
    Escalation,
    OutcomeRecord,
    PolicySnapshot,
    Principal,
    RequestSpec,
    Risk,
    Run,
    Status,
)
from signoff.roles import RoleLadder
from signoff.stores.base import Change


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a submission becomes a request with, once the service has floored it."""

    spec: RequestSpec
    run: Run
    reason: str | None
    policy: PolicySnapshot
    risk: Risk
    channels: list[str]


def create(
    proposal: Proposal, agent: Principal, now: datetime
) -> tuple[ApprovalRequest, AuditEntry]:
    """A new pending request, and its ``request.created`` audit entry."""
    spec, run, policy = proposal.spec, proposal.run, proposal.policy
    key = spec.idempotency_key
    if key is None and run.run_id and spec.tool_call_id:
        key = f"{run.run_id}/{spec.tool_call_id}"
    args_digest = digest(spec.args)
    request = ApprovalRequest(
        id=new_id("apr"),
        status=Status.PENDING,
        tool=spec.tool,
        args=spec.args,
        final_args=spec.args,
        tool_call_id=spec.tool_call_id,
        run=run,
        requested_by=agent.sub,
        reason=proposal.reason,
        context=spec.context,
        risk=proposal.risk,
        policy=policy,
        created_at=now,
        expires_at=now + timedelta(seconds=policy.timeout_s),
        args_schema=spec.args_schema,
        args_digest=args_digest,
        # scoped to the agent, so one agent's key never finds another agent's request
        idempotency_key=None if key is None else f"{agent.sub}\x1f{key}",
        channels=proposal.channels,
    )
    audit = AuditEntry(
        type="request.created",
        request_id=request.id,
        actor=agent.audit_actor(),
        at=now,
        via="agent",
        data={
            "tool": request.tool,
            "args": request.args,
            "args_digest": args_digest,
            "tool_call_id": request.tool_call_id,
            "run": request.run.model_dump(mode="json"),
            "reason": request.reason,
            "context": jsonable(request.context),
            "risk": request.risk.value,
            "policy": policy.model_dump(mode="json"),
            "expires_at": request.expires_at.isoformat(),
        },
    )
    return request, audit


def refusal(
    req: ApprovalRequest, principal: Principal, roles: RoleLadder, now: datetime
) -> SignoffError | None:
    """Why ``principal`` may not decide ``req`` now, or None."""
    if principal.kind != "approver":
        return Forbidden("agents may not decide approval requests")
    if req.status.terminal:
        return Conflict(no_longer(req))
    if now >= req.expires_at:
        return Conflict(f"the request expired at {req.expires_at.isoformat()}")
    if not roles.admits(principal.role, req.policy.min_role):
        return Forbidden(
            f"role {principal.role!r} may not decide this request; it needs "
            f"{req.policy.min_role!r} or higher",
            required_role=req.policy.min_role,
        )
    if principal.sub == req.requested_by and not req.policy.allow_self_approval:
        return Forbidden("you requested this call, so you may not decide it")
    return None


def decide(req: ApprovalRequest, asked: DecisionInput, roles: RoleLadder, now: datetime) -> Change:
    """Approve, reject or respond, where the policy's ``decisions`` allow it; with a quorum,
    an approval counts toward it. Each refusal is a Change that only audits it."""
    principal, kind, verb = asked.principal, asked.kind, asked.kind.value

    def refuse(error: SignoffError) -> Change:
        return refused(req, principal, now, verb, error, via=asked.via)

    if principal.kind != "approver":
        return refuse(Forbidden("agents may not decide approval requests"))
    if (late := expired_change(req, now, principal, verb, via=asked.via)) is not None:
        return late
    if (error := refusal(req, principal, roles, now)) is not None:
        return refuse(error)
    if (error := _looked_at(req, asked)) is not None:
        return refuse(error)
    if (not_allowed := disallowed(req, asked) or _grant_refused(req, asked, roles)) is not None:
        return refuse(not_allowed)
    if kind is not DecisionKind.APPROVE:
        return _ended(req, asked, now)
    if any(d.by == principal.sub for d in req.approvals):
        return refuse(Conflict("you have already approved this request"))
    final_args, final_digest = req.final_args, req.args_digest
    if asked.modified_args:
        final_args = {**req.final_args, **asked.modified_args}
        final_digest = digest(final_args)
    record = Decision(
        decision=kind,
        by=principal.sub,
        role=principal.role,
        reason=asked.reason,
        modified_args=asked.modified_args or None,
        at=now,
        via=asked.via,
        args_digest=final_digest,
    )
    new = req.model_copy(
        update={
            "final_args": final_args,
            "args_digest": final_digest,
            "decisions": [*req.decisions, record],
        }
    )
    if len({d.by for d in new.approvals}) >= new.policy.quorum:
        new = new.model_copy(update={"status": Status.APPROVED, "decided_at": now})
        entry = _decision_entry("request.approved", new, principal, record)
    else:
        entry = _decision_entry("decision.recorded", new, principal, record)
    return with_grant(req, new, record, entry, principal, asked.grant)


def _grant_refused(
    req: ApprovalRequest, asked: DecisionInput, roles: RoleLadder
) -> SignoffError | None:
    """Why the standing grant asked with this decision cannot be made, or None (no grant
    asked): a rejection, a response or an edit never grants (:mod:`signoff.granting`)."""
    if asked.grant is None:
        return None
    approve = asked.kind is DecisionKind.APPROVE
    return grant_problem(req, asked.principal, approve, bool(asked.modified_args), roles)


def _looked_at(req: ApprovalRequest, asked: DecisionInput) -> SignoffError | None:
    """Why the decision is not on the arguments as they are: changed since the approver
    looked, an edit that does not fit, or changed since the edit was checked."""
    if asked.seen_digest is not None and asked.seen_digest != req.args_digest:
        return changed(req)
    if asked.edit_problem is not None:
        return InvalidEdit(asked.edit_problem)
    if asked.modified_args and req.args_digest != asked.checked_digest:
        return changed(req)
    return None


def _ended(req: ApprovalRequest, asked: DecisionInput, now: datetime) -> Change:
    """A rejection or a response: it ends the request at once, by one qualified approver (a
    quorum counts only toward running the tool, and neither runs anything)."""
    kind = asked.kind
    ended = Status.REJECTED if kind is DecisionKind.REJECT else Status.RESPONDED
    record = Decision(
        decision=kind,
        by=asked.principal.sub,
        role=asked.principal.role,
        reason=asked.reason,
        at=now,
        via=asked.via,
        response=asked.response,
    )
    update = {"status": ended, "decided_at": now, "decisions": [*req.decisions, record]}
    if kind is DecisionKind.RESPOND:
        update["response"] = asked.response
    new = req.model_copy(update=update)
    return Change(new, [_decision_entry(f"request.{ended.value}", new, asked.principal, record)])


def cancel(req: ApprovalRequest, agent: Principal, reason: str | None, now: datetime) -> Change:
    if (refusal_ := owner_refusal(req, agent, "cancel", now)) is not None:
        return refusal_
    if (late := expired_change(req, now, agent, "cancel")) is not None:
        return late
    if req.status.terminal:
        return refused(req, agent, now, "cancel", Conflict(no_longer(req)))
    new = req.model_copy(
        update={"status": Status.CANCELLED, "decided_at": now, "cancel_reason": reason}
    )
    entry = AuditEntry(
        "request.cancelled", req.id, agent.audit_actor(), now, "agent", {"reason": reason}
    )
    return Change(new, [entry])


def consume(req: ApprovalRequest, agent: Principal, now: datetime) -> Change:
    """Claim an approved request for execution: once; every later claim is a Conflict."""
    if (refusal_ := owner_refusal(req, agent, "consume", now)) is not None:
        return refusal_
    if req.status is not Status.APPROVED:
        error = Conflict(f"the request is {req.status.value}, not approved")
        return refused(req, agent, now, "consume", error)
    if req.consumed_at is not None:
        error = Conflict("this approval was already used to run the tool")
        return refused(req, agent, now, "consume", error)
    new = req.model_copy(update={"consumed_at": now})
    entry = AuditEntry(
        "request.consumed",
        req.id,
        agent.audit_actor(),
        now,
        "agent",
        {"args_digest": req.args_digest, "final_args": req.final_args},
    )
    return Change(new, [entry])


def record_outcome(
    req: ApprovalRequest,
    agent: Principal,
    status: Literal["succeeded", "failed"],
    detail: Any,
    now: datetime,
) -> Change:
    if (refusal_ := owner_refusal(req, agent, "report on", now)) is not None:
        return refusal_
    if req.status is not Status.APPROVED:
        error = Conflict(f"the request is {req.status.value}; only an approved call runs")
        return refused(req, agent, now, "record an outcome", error)
    if req.outcome is not None:
        error = Conflict("an outcome was already recorded for this request")
        return refused(req, agent, now, "record an outcome", error)
    update: dict[str, Any] = {"outcome": OutcomeRecord(status=status, detail=detail, at=now)}
    if req.consumed_at is None:
        update["consumed_at"] = now
    entry = AuditEntry(
        "request.outcome",
        req.id,
        agent.audit_actor(),
        now,
        "agent",
        {"status": status, "detail": detail},
    )
    return Change(req.model_copy(update=update), [entry])


def expire(req: ApprovalRequest, now: datetime) -> Change:
    """Expire a pending request past its time; otherwise no change."""
    if req.status is not Status.PENDING or now < req.expires_at:
        return Change()
    return expiry(req, now)


def escalate(req: ApprovalRequest, step: int, notify: list[str], now: datetime) -> Change:
    """Record escalation ``step`` of a request still pending: once (a step that fired is
    never repeated), and never after the request stopped waiting; otherwise no change."""
    if req.status is not Status.PENDING or now >= req.expires_at:
        return Change()
    if any(e.step == step for e in req.escalations):
        return Change()
    record = Escalation(step=step, at=now, notify=notify)
    new = req.model_copy(update={"escalations": [*req.escalations, record]})
    entry = AuditEntry(
        "request.escalated",
        req.id,
        SYSTEM.audit_actor(),
        now,
        "system",
        {"step": step, "notify": notify},
    )
    return Change(new, [entry])


def expiry(req: ApprovalRequest, now: datetime) -> Change:
    new = req.model_copy(update={"status": Status.EXPIRED, "decided_at": now})
    entry = AuditEntry(
        "request.expired",
        req.id,
        SYSTEM.audit_actor(),
        now,
        "system",
        {"expires_at": req.expires_at.isoformat()},
    )
    return Change(new, [entry])


def expired_change(
    req: ApprovalRequest,
    now: datetime,
    principal: Principal,
    verb: str,
    *,
    via: str | None = None,
) -> Change | None:
    """A pending request past its time: expire it and refuse the late action with 409."""
    if req.status is not Status.PENDING or now < req.expires_at:
        return None
    expired = expiry(req, now)
    error = Conflict(f"the request expired at {req.expires_at.isoformat()}")
    late = refused(expired.request or req, principal, now, verb, error, via=via)
    return Change(expired.request, [*expired.audit, *late.audit], error)


def owner_refusal(
    req: ApprovalRequest, principal: Principal, verb: str, now: datetime
) -> Change | None:
    if principal.kind == "agent" and req.requested_by == principal.sub:
        return None
    error = Forbidden(f"only the agent that made this request may {verb} it")
    return refused(req, principal, now, verb, error)


def bounded(detail: Any) -> Any:
    """An outcome's detail, cut to a preview when its JSON is longer than the limit."""
    text = json.dumps(detail, ensure_ascii=False)
    if len(text) <= MAX_DETAIL_CHARS:
        return detail
    return {"truncated": True, "preview": text[:MAX_DETAIL_CHARS]}


def refused(
    req: ApprovalRequest,
    principal: Principal,
    now: datetime,
    verb: str,
    error: SignoffError,
    *,
    via: str | None = None,
) -> Change:
    """A refusal: audited, nothing else changed, then raised to the caller."""
    entry = AuditEntry(
        "decision.refused" if verb in ("approve", "reject", "respond") else "action.refused",
        req.id,
        principal.audit_actor(),
        now,
        via,
        {
            "attempted": verb,
            "error": error.code,
            "message": error.message,
            "status": req.status.value,
        },
    )
    return Change(audit=[entry], error=error)


def changed(req: ApprovalRequest) -> Conflict:
    """The arguments are no longer those the approver was shown: look again."""
    return Conflict(
        "the arguments changed since you looked (another approver edited them): review the "
        "request again",
        args_digest=req.args_digest,
        final_args=req.final_args,
    )


def no_longer(req: ApprovalRequest) -> str:
    return f"the request is no longer pending: it is {req.status.value}"


def access_refused(
    req: ApprovalRequest, principal: Principal, verb: str, now: datetime
) -> AuditEntry:
    """The audit entry of a refused read (no state changes)."""
    return AuditEntry(
        "access.refused",
        req.id,
        principal.audit_actor(),
        now,
        None,
        {"attempted": verb, "error": "forbidden"},
    )


def _decision_entry(
    type_: str, req: ApprovalRequest, principal: Principal, record: Decision
) -> AuditEntry:
    return AuditEntry(
        type_,
        req.id,
        principal.audit_actor(),
        record.at,
        record.via,
        {
            "decision": record.decision.value,
            "reason": record.reason,
            "modified_args": record.modified_args,
            "args_digest": record.args_digest,
            "status": req.status.value,
            "approvals": len({d.by for d in req.approvals}),
            "quorum": req.policy.quorum,
            **({"response": record.response} if record.decision is DecisionKind.RESPOND else {}),
        },
    )
