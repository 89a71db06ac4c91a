"""The demo's tools: the seed scenarios, with in-memory side effects."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from signoff.gate import Gate
from signoff.models import ToolCall
from signoff.policy import Policy

ORDERS: dict[str, dict[str, Any]] = {
    "ORD-1001": {"customer": "ana@example.com", "total": 40.0, "status": "delivered"},
    "ORD-1002": {"customer": "li@example.com", "total": 250.0, "status": "damaged in transit"},
    "ORD-1003": {"customer": "sam@example.com", "total": 1200.0, "status": "delivered"},
}


def register(gate: Gate, *, timeout: str = "5m") -> None:
    """Gate the demo tools on ``gate``."""

    @gate.tool(policy=Policy(when=False))
    async def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order by id. Read-only: never needs approval."""
        order = ORDERS.get(order_id)
        return {"order_id": order_id, **order} if order else {"error": f"no order {order_id}"}

    @gate.tool(
        policy=Policy(
            when=lambda ctx: ctx.args["amount"] > 100,
            min_role="publisher",
            reason=_refund_reason,
            reject_message="Refund was not approved.",
            timeout=timeout,
            risk="medium",
            editable=["amount"],
            context=lambda ctx: {
                "why": ctx.args["reason"],
                "affected": f"order {ctx.args['order_id']}",
                "reversible": False,
            },
        )
    )
    async def issue_refund(
        order_id: str, amount: Annotated[float, Field(gt=0)], reason: str
    ) -> dict[str, Any]:
        """Issue a customer refund. Refunds above $100 need a publisher's approval."""
        return {"refund_id": f"rf_{order_id.lower()}", "order_id": order_id, "amount": amount}

    @gate.tool(
        policy=Policy(
            min_role="publisher",
            reason=lambda ctx: f"Publish the blog post {ctx.args['title']!r}",
            timeout=timeout,
            risk="medium",
            editable=["title"],
            context={"affected": "the public website", "reversible": True},
        )
    )
    async def publish_blog_post(title: str) -> dict[str, Any]:
        """Publish a blog post to the website. Requires a publisher's approval."""
        return {"published": True, "title": title}

    @gate.tool(
        policy=Policy(
            min_role="admin",
            quorum=2,
            reason=lambda ctx: f"Permanently delete the account {ctx.args['email']}",
            timeout=timeout,
            risk="critical",
            context={
                "affected": "all of the customer's data",
                "reversible": False,
                "alternatives": "deactivate the account instead",
            },
        )
    )
    async def delete_account(email: str) -> dict[str, Any]:
        """Permanently delete a customer account. Needs two admins."""
        return {"deleted": email}


def _refund_reason(ctx: ToolCall) -> str:
    return f"Refund ${ctx.args['amount']:.2f} for {ctx.args['order_id']}: {ctx.args['reason']}"
