"""An agent in its own process that gates one call through a remote signoff server.

Usage: python -m tests.helpers.remote_agent URL AGENT_TOKEN ARGS_JSON [TIMEOUT] [TOOL_CALL_ID]
Prints one JSON line: {"status", "to_model", "executed_args", "request_id"}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from signoff import Gate, Policy, Run


async def main(url: str, token: str, args: dict[str, Any], timeout: str, call_id: str) -> None:
    executed: list[dict[str, Any]] = []
    async with Gate(url, token=token) as gate:

        @gate.tool(
            policy=Policy(
                when=lambda ctx: ctx.args["amount"] > 100,
                min_role="publisher",
                reason=lambda ctx: f"Refund ${ctx.args['amount']} for {ctx.args['order_id']}",
                reject_message="Refund was not approved.",
                timeout=timeout,
                editable=["amount"],
            )
        )
        async def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
            executed.append({"order_id": order_id, "amount": amount})
            return {"refund_id": f"rf_{order_id.lower()}", "amount": amount}

        outcome = await gate.call(
            "issue_refund", args, tool_call_id=call_id, run=Run(agent_id="support", run_id="e2e")
        )
    print(
        json.dumps(
            {
                "status": outcome.status.value,
                "to_model": outcome.to_model(),
                "executed_args": executed,
                "request_id": outcome.request.id if outcome.request else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    timeout = sys.argv[4] if len(sys.argv) > 4 else "5m"
    call_id = sys.argv[5] if len(sys.argv) > 5 else "toolu_1"
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), timeout, call_id))
