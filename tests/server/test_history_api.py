"""Session-aware limits on a gate that talks to a server: the agent's own history of calls
over the API (GET /v1/history, POST /v1/executions)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from signoff import CallStatus, Gate, Run
from tests.server.conftest import Live
from tests.test_limits import PUBLISHER, refunds, refunds_config

RUN_1 = Run(agent_id="support", run_id="run-1")
RUN_2 = Run(agent_id="support", run_id="run-2")


async def test_a_remote_gate_keeps_a_runs_running_total(live: Live) -> None:
    gate = Gate(live.url, token=live.agent_token("support"), config=refunds_config())
    ran = refunds(gate)
    try:

        async def refund(amount: float, run: Run = RUN_1) -> CallStatus:
            outcome = await gate.call("issue_refund", {"amount": amount}, run=run, wait=False)
            return outcome.status

        assert await refund(200) is CallStatus.EXECUTED
        assert await refund(200) is CallStatus.EXECUTED
        assert await refund(200) is CallStatus.PENDING  # 600 in the run: it asks
        assert await refund(450, RUN_2) is CallStatus.EXECUTED  # another run: from zero
        assert ran == [200, 200, 450]
        [pending] = await live.service.pending(PUBLISHER)
        assert pending.final_args == {"amount": 200}
    finally:
        await gate.aclose()
    # what ran unasked is on the server's ledger, under the token's agent
    rows = await live.service.store.history("support", pending.created_at.replace(year=2000))
    assert sorted((r.run_id, r.args["amount"]) for r in rows if not r.in_flight) == [
        ("run-1", 200),
        ("run-1", 200),
        ("run-2", 450),
    ]


async def test_the_history_is_the_reading_agents_own(live: Live) -> None:
    async with live.client(live.agent_token("agent-a")) as a:
        body = {"tool": "pay", "args": {"amount": 5}, "run_id": "r"}
        assert (await a.post("/v1/executions", json=body)).status_code == 200
        [item] = (await a.get("/v1/history", params={"lookback_s": 3600})).json()["items"]
        assert item["tool"] == "pay" and item["args"] == {"amount": 5}
    async with live.client(live.agent_token("agent-b")) as b:
        seen = (await b.get("/v1/history", params={"lookback_s": 3600})).json()
        assert seen["items"] == []


async def test_remote_gates_racing_keep_the_line(live: Live) -> None:
    """Two gates of one agent (two processes) call at once: their reservations on the
    server keep the run's total under the line; the asked calls give theirs back."""
    gates = [
        Gate(live.url, token=live.agent_token("support"), config=refunds_config()) for _ in range(2)
    ]
    ran = [refunds(g) for g in gates]
    try:
        calls = [
            g.call("issue_refund", {"amount": 100}, run=RUN_1, tool_call_id=f"g{i}-{n}", wait=False)
            for i, g in enumerate(gates)
            for n in range(5)
        ]
        outcomes = await asyncio.gather(*calls)
    finally:
        for g in gates:
            await g.aclose()
    assert sum(sum(r) for r in ran) <= 500
    executed = sum(o.status is CallStatus.EXECUTED for o in outcomes)
    assert executed == len(ran[0]) + len(ran[1]) >= 1
    since = datetime(2000, 1, 1, tzinfo=UTC)
    rows = await live.service.store.history("support", since)
    assert len([r for r in rows if r.execution_id is not None]) == executed


async def test_a_remote_gates_shadow_tool_is_recorded_on_the_server(live: Live) -> None:
    from signoff.shadow import shadow_records
    from tests.test_shadow import refund_config, refund_tool

    gate = Gate(live.url, token=live.agent_token("support"), config=refund_config("shadow"))
    ran = refund_tool(gate)
    spoofed = Run(agent_id="someone-else", run_id="run-s")
    try:
        for amount in (50, 500, 5000):  # would run, ask, deny: each runs at once
            outcome = await gate.call(
                "issue_refund", {"order_id": "A", "amount": amount}, run=spoofed
            )
            assert outcome.status is CallStatus.EXECUTED
    finally:
        await gate.aclose()
    assert ran == [50, 500, 5000]
    records = [r async for r in shadow_records(live.service.store)]
    assert [(r.verdict, r.args["amount"]) for r in records] == [
        ("run", 50),
        ("ask", 500),
        ("deny", 5000),
    ]
    # the agent is the token's, whatever run the gate named; the terms are the floor's
    assert {r.run.agent_id for r in records} == {"support"}
    assert {r.run.run_id for r in records} == {"run-s"}
    assert (records[1].min_role, records[1].quorum) == ("publisher", 2)
    async with live.client(live.approver_token("paul", "publisher")) as paul:
        stats = (await paul.get("/v1/stats", params={"since": "1d"})).json()["shadow"]
    assert stats["tools"] == [{"tool": "issue_refund", "run": 1, "ask": 1, "deny": 1}]
