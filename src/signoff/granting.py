"""The pure rules of standing grants (values in :mod:`signoff.grants`).

Who may grant, on which request, and which later requests a grant covers. Like
:mod:`signoff.lifecycle`, nothing here does I/O or reads a clock; the service reads the
grants from the store at each submission (no cache: a revocation on one replica holds on
every other at once) and the store re-checks, in the transaction that approves, that the
grant is still live.

The rule for covering a request (docs/security.md, "Standing grants"):

- the grant is live: not revoked, not expired;
- same agent (``requested_by``), same tool, same schema fingerprint; with
  ``scope="identical"``, the same arguments' digest;
- the request's own policy allows one person's word: ``quorum == 1`` (a grant never stands
  in for several approvers);
- the granter's role, as it was when they granted, still meets the request's ``min_role``
  (a policy that raised the floor since voids the grant for those calls);
- the granter is not the agent, unless the request's policy allows self-approval.
"""

from __future__ import annotations

from datetime import datetime

from signoff._util import new_id
from signoff.audit import AuditEntry
from signoff.errors import Forbidden, InvalidArguments, SignoffError
from signoff.grants import Grant, GrantAsk, ends, schema_fingerprint
from signoff.models import ApprovalRequest, Decision, DecisionKind, Principal, Status
from signoff.roles import RoleLadder
from signoff.stores.base import Change

VIA = "grant"


def grant_problem(
    req: ApprovalRequest, principal: Principal, approves: bool, edited: bool, roles: RoleLadder
) -> SignoffError | None:
    """Why ``principal`` may not grant with this decision on ``req``, or None: a grant extends
    what the approver saw to calls they will not see, so only a plain approval (no edits),
    by someone whose role meets the floor, on a one-approver call, grants."""
    if not approves or edited:
        return InvalidArguments("only an approval without edits may grant")
    if req.policy.quorum > 1:
        return Forbidden(
            f"this call needs {req.policy.quorum} approvers, so no one approver may grant "
            "standing approval for it"
        )
    if not roles.admits(principal.role, req.policy.min_role):
        return Forbidden(
            f"granting needs the role {req.policy.min_role!r} or higher",
            required_role=req.policy.min_role,
        )
    return None


def with_grant(
    req: ApprovalRequest,
    new: ApprovalRequest,
    record: Decision,
    entry: AuditEntry,
    principal: Principal,
    ask: GrantAsk | None,
) -> Change:
    """The change of a decision (``new``, its ``record`` and ``entry``), and, when ``ask``ed
    and the decision approved the request, the standing grant it makes (``grant.created``)."""
    if ask is None or new.status is not Status.APPROVED:
        return Change(new, [entry])
    grant, granted = make_grant(new, principal, ask, record.at)
    record = record.model_copy(update={"grant_id": grant.id})
    new = new.model_copy(update={"decisions": [*req.decisions, record]})
    entry.data["grant_id"] = grant.id
    return Change(new, [entry, granted], grant=grant)


def make_grant(
    req: ApprovalRequest, principal: Principal, ask: GrantAsk, now: datetime
) -> tuple[Grant, AuditEntry]:
    """The grant an approval of ``req`` makes (the caller checked :func:`grant_refusal`),
    and its ``grant.created`` audit entry."""
    grant = Grant(
        id=new_id("grt"),
        tool=req.tool,
        agent=req.requested_by,
        scope=ask.scope,
        args_digest=req.args_digest if ask.scope == "identical" else None,
        schema_fingerprint=schema_fingerprint(req.args_schema),
        granted_by=principal.sub,
        role=principal.role,
        request_id=req.id,
        created_at=now,
        expires_at=ends(now, ask),
    )
    entry = AuditEntry(
        "grant.created",
        req.id,
        principal.audit_actor(),
        now,
        None,
        grant.model_dump(mode="json"),
    )
    return grant, entry


def not_covered(grant: Grant, req: ApprovalRequest, roles: RoleLadder, now: datetime) -> str | None:
    """Why ``grant`` does not approve ``req`` (see the module docstring), or None."""
    if not grant.live(now):
        return "the grant is revoked or expired"
    if grant.agent != req.requested_by or grant.tool != req.tool:
        return "the grant is for another agent or tool"
    if grant.schema_fingerprint != schema_fingerprint(req.args_schema):
        return "the tool's schema changed since the grant"
    if grant.scope == "identical" and grant.args_digest != req.args_digest:
        return "the arguments differ from those granted"
    if req.policy.quorum > 1:
        return "the call needs more than one approver"
    if not roles.admits(grant.role, req.policy.min_role):
        return "the granter's role no longer meets the call's floor"
    if grant.granted_by == req.requested_by and not req.policy.allow_self_approval:
        return "the granter may not approve their own calls"
    return None


def approve_by_grant(req: ApprovalRequest, grant: Grant, now: datetime) -> Change:
    """A new pending request approved at once by ``grant`` (checked with
    :func:`not_covered`): a decision ``via="grant"`` carrying the grant's id."""
    record = Decision(
        decision=DecisionKind.APPROVE,
        by=grant.granted_by,
        role=grant.role,
        reason=f"standing grant {grant.id}",
        at=now,
        via=VIA,
        args_digest=req.args_digest,
        grant_id=grant.id,
    )
    new = req.model_copy(
        update={"status": Status.APPROVED, "decided_at": now, "decisions": [record]}
    )
    actor = {"sub": grant.granted_by, "kind": "approver", "role": grant.role, "grant": grant.id}
    entry = AuditEntry(
        "request.approved",
        req.id,
        actor,
        now,
        VIA,
        {
            "decision": "approve",
            "reason": record.reason,
            "modified_args": None,
            "args_digest": req.args_digest,
            "status": Status.APPROVED.value,
            "approvals": 1,
            "quorum": req.policy.quorum,
            "grant_id": grant.id,
        },
    )
    return Change(new, [entry])


def revoke_refusal(grant: Grant, principal: Principal, roles: RoleLadder) -> str | None:
    """Why ``principal`` may not revoke ``grant``: only its granter or the highest role."""
    if principal.kind != "approver":
        return "agents may not revoke grants"
    if principal.sub == grant.granted_by or principal.role == roles.highest:
        return None
    return f"only the approver who granted it or a {roles.highest!r} may revoke a grant"


def revocation(grant: Grant, principal: Principal, now: datetime) -> AuditEntry:
    return AuditEntry(
        "grant.revoked",
        grant.request_id,
        principal.audit_actor(),
        now,
        None,
        {"grant_id": grant.id, "tool": grant.tool, "agent": grant.agent},
    )
