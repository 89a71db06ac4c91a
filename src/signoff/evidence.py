"""What binds a request's stored row to its audited events.

Each event that changes a request names the state it leaves the request in, in a small
vocabulary (:func:`state_after`); the request's row names its state in the same vocabulary
(:func:`request_state`). They must agree:

- every write that changes a request checks, in its own transaction, that the newest state
  in the request's events is the state the change was computed from (``expects``): a row
  changed behind signoff's back (a rejected request flipped to approved) is never decided,
  consumed or reported on; it fails closed with :class:`StateMismatch`;
- ``audit verify`` folds every request's events (:func:`fold`) and reports each row whose
  state disagrees.

The states:

=================================  ==============================================
``pending <digest> <approvals>``   waiting; the arguments' digest; approvals so far
``approved <digest>``              approved for exactly those arguments
``consumed <digest>``              claimed for execution: the tool may be running
``done <succeeded|failed>``        the outcome is recorded
``rejected`` · ``expired`` ·       terminal
``cancelled`` · ``responded``
=================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signoff.models import ApprovalRequest, Status

__all__ = ["LIVE_TYPES", "StateFold", "live_type", "request_state", "state_after"]

#: audit event type → the live event type it is streamed as
LIVE_TYPES: Mapping[str, str] = {
    "request.created": "request.created",
    "decision.recorded": "request.decided",
    "request.approved": "request.decided",
    "request.rejected": "request.decided",
    "request.responded": "request.decided",
    "request.expired": "request.expired",
    "request.cancelled": "request.cancelled",
    "request.consumed": "request.consumed",
    "request.outcome": "request.outcome",
    "request.escalated": "request.escalated",
}

_TERMINAL = {"request.rejected": "rejected", "request.expired": "expired"}
_TERMINAL["request.cancelled"] = "cancelled"
_TERMINAL["request.responded"] = "responded"


def live_type(audit_type: str) -> str | None:
    return LIVE_TYPES.get(audit_type)


def state_after(audit_type: str, data: Mapping[str, Any]) -> str | None:
    """The state an event of ``audit_type`` with ``data`` leaves its request in."""
    if audit_type == "request.created":
        return f"pending {data.get('args_digest')} 0"
    if audit_type == "decision.recorded":
        return f"pending {data.get('args_digest')} {data.get('approvals')}"
    if audit_type == "request.approved":
        return f"approved {data.get('args_digest')}"
    if audit_type == "request.consumed":
        return f"consumed {data.get('args_digest')}"
    if audit_type == "request.outcome":
        return f"done {data.get('status')}"
    return _TERMINAL.get(audit_type)


def request_state(request: ApprovalRequest) -> str:
    """The state ``request``'s row claims, in :func:`state_after`'s vocabulary."""
    status = request.status
    if status is Status.PENDING:
        return f"pending {request.args_digest} {len({d.by for d in request.approvals})}"
    if status is Status.APPROVED:
        if request.outcome is not None:
            return f"done {request.outcome.status}"
        if request.consumed_at is not None:
            return f"consumed {request.args_digest}"
        return f"approved {request.args_digest}"
    return status.value


class StateFold:
    """The newest state of each request, from its events fed in log order: what ``audit
    verify`` compares the rows with. Keeps one short string per request."""

    __slots__ = ("states",)

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    def feed(self, request_id: str | None, state: str | None) -> None:
        if request_id is not None and state is not None:
            self.states[request_id] = state

    def disagreement(self, request: ApprovalRequest) -> dict[str, str | None] | None:
        """How ``request``'s row disagrees with its events, or None."""
        claimed = request_state(request)
        logged = self.states.get(request.id)
        if claimed == logged:
            return None
        return {"request_id": request.id, "row": claimed, "events": logged}
