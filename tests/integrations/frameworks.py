"""What the framework adapters' tests share: the policies of the shop's two tools, a record
of the tool bodies that really ran, and the CONTRACT §4 answers the model should see."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from signoff import Policy

from .fake_providers import REFUND_REJECTED


def refund_policy(timeout: float = 300) -> Policy:
    """``issue_refund`` asks a publisher; the amount is editable."""
    return Policy(
        min_role="publisher",
        reason=lambda call: f"Refund {call.args['amount']} for {call.args['order_id']}",
        reject_message=REFUND_REJECTED,
        timeout=timeout,
        editable=["amount"],
    )


def policies(timeout: float = 300) -> dict[str, Policy]:
    """The shop's policies by tool name: refunds ask, lookups never do."""
    return {"issue_refund": refund_policy(timeout), "lookup_order": Policy(when=False)}


@dataclass
class Ran:
    """Every time a tool body really ran, with the arguments it got."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def refund(self, order_id: str, amount: float) -> dict[str, Any]:
        self.calls.append(("issue_refund", {"order_id": order_id, "amount": amount}))
        return {"refund_id": f"rf_{order_id.lower()}", "amount": amount}

    def lookup(self, order_id: str) -> dict[str, Any]:
        self.calls.append(("lookup_order", {"order_id": order_id}))
        return {"order_id": order_id, "status": "delivered", "total": 250.0}


def rejected(args: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "error": "approval_rejected",
        "message": f"{REFUND_REJECTED} Reason: {reason}",
        "tool": "issue_refund",
        "parameters": args,
    }


def timed_out(args: dict[str, Any], after: str) -> dict[str, Any]:
    return {
        "error": "approval_timeout",
        "message": f"Approval request timed out after {after}",
        "tool": "issue_refund",
        "parameters": args,
    }


def edited(result: Any, field_name: str, proposed: Any, approved: Any) -> str:
    return json.dumps(
        {
            "result": result,
            "approval": {
                "modified_by_approver": {field_name: {"proposed": proposed, "approved": approved}},
                "note": (
                    f"An approver changed {field_name} before the call ran; it ran with the "
                    "approved values, not the ones you proposed."
                ),
            },
        }
    )
