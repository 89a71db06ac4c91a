"""The Python approver API grants: ``gate.approve(..., grant=...)`` on an embedded gate."""

from __future__ import annotations

import asyncio
import json

from signoff import CallStatus, Gate
from tests.test_gate import PUBLISHER, RUN, Ledger, refund_tool


async def test_an_approval_with_a_grant_runs_the_next_identical_call_at_once() -> None:
    gate, ledger = Gate("memory://"), Ledger()
    try:
        refund_tool(gate, ledger)
        args = {"order_id": "ORD-1", "amount": 250}
        first = asyncio.create_task(gate.call("issue_refund", args, tool_call_id="t1", run=RUN))
        while not (waiting := await gate.pending()):
            await asyncio.sleep(0.01)
        await gate.approve(waiting[0], by=PUBLISHER, grant={"ttl": "1h"})
        assert (await first).status is CallStatus.EXECUTED

        # nobody approves this one: the grant does, and the tool runs
        second = await asyncio.wait_for(
            gate.call("issue_refund", args, tool_call_id="t2", run=RUN), timeout=5
        )
        assert second.status is CallStatus.EXECUTED
        assert second.request is not None
        (decision,) = second.request.decisions
        assert decision.via == "grant" and decision.grant_id is not None
        assert json.loads(second.to_model())["refund_id"] == "rf_ord-1"
        assert len(ledger.calls) == 2

        # other arguments are asked about
        third = asyncio.create_task(
            gate.call("issue_refund", {"order_id": "ORD-2", "amount": 300}, run=RUN)
        )
        while not await gate.pending():
            await asyncio.sleep(0.01)
        assert not third.done()
        third.cancel()
    finally:
        await gate.aclose()
