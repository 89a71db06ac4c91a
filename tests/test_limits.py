"""Session-aware limits (signoff.history) end to end through a Gate, on every store: a
running total per run, counts per agent, calls in flight, in CEL and in code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from signoff import CallStatus, ConfigError, Gate, Policy, Principal, Run
from signoff.approvals import LocalApprovals
from signoff.config import Config, load_config, parse_config
from signoff.history import History
from signoff.models import ToolCall
from signoff.service import ApprovalService
from signoff.stores.base import Store

PUBLISHER = Principal(sub="paul", role="publisher")
RUN_1 = Run(agent_id="support", run_id="run-1")
RUN_2 = Run(agent_id="support", run_id="run-2")
REFUND_LIMIT = "run_sum('issue_refund', 'amount', '24h') + double(args.amount) > 500.0"
SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["amount"],
}


def refunds_config(when: str = REFUND_LIMIT) -> Config:
    entry = {"name": "issue_refund", "when": when, "editable": ["amount"]}
    return parse_config({"tools": [entry]})


def gate_on(store: Store, config: Config) -> Gate:
    service = ApprovalService(store, sweep=False, config=config)
    return Gate(LocalApprovals(service), config=config)


def refunds(gate: Gate, policy: Policy | None = None) -> list[float]:
    ran: list[float] = []

    def issue_refund(args: dict[str, Any]) -> dict[str, Any]:
        ran.append(args["amount"])
        return {"ok": True}

    gate.add_tool("issue_refund", issue_refund, input_schema=SCHEMA, policy=policy)
    return ran


@pytest.fixture
async def limited(store: Store) -> AsyncIterator[tuple[Gate, list[float]]]:
    gate = gate_on(store, refunds_config())
    ran = refunds(gate)
    yield gate, ran
    await gate.aclose()


async def refund(gate: Gate, amount: float, run: Run = RUN_1, call_id: str | None = None) -> Any:
    return await gate.call(
        "issue_refund", {"amount": amount}, run=run, tool_call_id=call_id, wait=False
    )


async def test_refunds_run_until_the_runs_total_would_pass_500(
    limited: tuple[Gate, list[float]],
) -> None:
    gate, ran = limited
    assert (await refund(gate, 200)).status is CallStatus.EXECUTED
    assert (await refund(gate, 200)).status is CallStatus.EXECUTED
    asked = await refund(gate, 200)  # 600 in total: past the line
    assert asked.status is CallStatus.PENDING
    assert ran == [200, 200]
    # a different run starts from zero
    assert (await refund(gate, 450, RUN_2)).status is CallStatus.EXECUTED
    # the pending refund counts while it may still run: 400 + 200 + 50
    assert (await refund(gate, 50)).status is CallStatus.PENDING
    for request in await gate.pending():
        await gate.reject(request, by=PUBLISHER, reason="no")
    # rejected ones never count: 400 + 100 is exactly the line, not past it
    assert (await refund(gate, 100)).status is CallStatus.EXECUTED
    assert (await refund(gate, 0.01)).status is CallStatus.PENDING
    assert ran == [200, 200, 450, 100]


async def test_calls_at_the_same_moment_never_pass_the_line_together(
    limited: tuple[Gate, list[float]], store: Store
) -> None:
    """Ten refunds of 100 at once, under a 500 line: each call reserves its place in the
    history before it reads it, so at most five run (a race may ask more often, never run
    past the line); the asked ones give their reservations back once their requests exist."""
    gate, ran = limited
    outcomes = await asyncio.gather(*(refund(gate, 100, call_id=f"c{n}") for n in range(10)))
    statuses = [o.status for o in outcomes]
    # in one process an agent's limited calls are judged in turn: exactly five fit
    assert statuses.count(CallStatus.EXECUTED) == 5 and ran == [100] * 5
    assert statuses.count(CallStatus.PENDING) == 5
    rows = await store.history("support", datetime(2000, 1, 1, tzinfo=UTC))
    ledger = [r for r in rows if r.execution_id is not None]
    assert len(ledger) == 5  # the asked calls gave their reservations back
    assert len([r for r in rows if r.in_flight]) == 5


async def test_a_denied_call_gives_its_reservation_back(store: Store) -> None:
    config = parse_config(
        {
            "tools": [
                {
                    "name": "issue_refund",
                    "deny": "run_count('issue_refund', '1h') >= 2",
                    "when": False,
                }
            ]
        }
    )
    gate = gate_on(store, config)
    ran = refunds(gate)
    try:
        statuses = [(await refund(gate, 10)).status for _ in range(4)]
        rows = await store.history("support", datetime(2000, 1, 1, tzinfo=UTC))
    finally:
        await gate.aclose()
    executed, rejected = CallStatus.EXECUTED, CallStatus.REJECTED
    assert statuses == [executed, executed, rejected, rejected]
    assert len(rows) == 2 and ran == [10, 10]  # the denied calls left nothing behind


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_gates_in_two_processes_never_pass_the_line_together(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    """Two gates with stores of their own on one database (two processes, or replicas):
    their calls race through the reservations, and the line holds."""
    from signoff.stores.postgres import PostgresStore
    from signoff.stores.sqlite import SqliteStore

    def opened() -> Store:
        if kind == "sqlite":
            return SqliteStore(tmp_path / "shared.db")
        return PostgresStore.from_url(postgres_url, min_size=1)

    gates = [gate_on(opened(), refunds_config()) for _ in range(2)]
    ran = [refunds(g) for g in gates]
    try:
        for round_ in range(3):  # a few rounds, each in a run of its own
            run = Run(agent_id="support", run_id=f"race-{round_}")
            before = sum(sum(r) for r in ran)
            calls = [
                refund(g, 100, run, call_id=f"{run.run_id}-{i}-{n}")
                for i, g in enumerate(gates)
                for n in range(5)
            ]
            await asyncio.gather(*calls)
            assert sum(sum(r) for r in ran) - before <= 500  # the run's line held
    finally:
        for g in gates:
            await g.aclose()


async def test_an_approved_refund_counts_with_the_approved_amount(
    limited: tuple[Gate, list[float]],
) -> None:
    gate, ran = limited
    first = await refund(gate, 800, call_id="t1")
    assert first.status is CallStatus.PENDING
    await gate.approve(first.request, by=PUBLISHER, modified_args={"amount": 300})
    settled = await gate.call("issue_refund", {"amount": 800}, run=RUN_1, tool_call_id="t1")
    assert settled.status is CallStatus.EXECUTED and ran == [300]
    # 300 approved + 200 = 500: still within the line
    assert (await refund(gate, 200)).status is CallStatus.EXECUTED
    assert (await refund(gate, 1)).status is CallStatus.PENDING


async def test_agent_counts_span_runs(store: Store) -> None:
    gate = gate_on(store, refunds_config("agent_count('issue_refund', '1h') >= 2"))
    ran = refunds(gate)
    try:
        assert (await refund(gate, 1, RUN_1)).status is CallStatus.EXECUTED
        assert (await refund(gate, 1, RUN_2)).status is CallStatus.EXECUTED
        other_run = Run(agent_id="support", run_id="run-3")
        assert (await refund(gate, 1, other_run)).status is CallStatus.PENDING
        # another agent has a history of its own
        other_agent = Run(agent_id="billing", run_id="run-1")
        assert (await refund(gate, 1, other_agent)).status is CallStatus.EXECUTED
        assert ran == [1, 1, 1]
    finally:
        await gate.aclose()


async def test_in_flight_counts_pending_and_unused_approvals(store: Store) -> None:
    gate = gate_on(store, refunds_config("args.amount > 100 || in_flight('issue_refund') >= 1"))
    ran = refunds(gate)
    try:
        big = await refund(gate, 200, call_id="big")
        assert big.status is CallStatus.PENDING
        assert (await refund(gate, 10)).status is CallStatus.PENDING  # one pending
        for request in await gate.pending():
            if request.id != big.request.id:
                await gate.reject(request, by=PUBLISHER, reason="later")
        await gate.approve(big.request, by=PUBLISHER)
        # approved, not yet used: still in flight
        assert (await refund(gate, 10, call_id="small")).status is CallStatus.PENDING
        (small,) = await gate.pending()
        await gate.reject(small, by=PUBLISHER, reason="later")
        settled = await gate.call("issue_refund", {"amount": 200}, run=RUN_1, tool_call_id="big")
        assert settled.status is CallStatus.EXECUTED
        assert (await refund(gate, 10)).status is CallStatus.EXECUTED
        assert ran == [200, 10]
    finally:
        await gate.aclose()


async def test_a_code_policy_takes_the_history_as_a_second_argument(store: Store) -> None:
    seen: list[History] = []

    def over_500(call: ToolCall, history: History) -> bool:
        seen.append(history)
        amount: float = call.args["amount"]
        return history.run_sum("issue_refund", "amount", "24h") + amount > 500

    gate = gate_on(store, Config())
    ran = refunds(gate, Policy(when=over_500, min_role="publisher"))
    try:
        assert (await refund(gate, 300)).status is CallStatus.EXECUTED
        assert (await refund(gate, 300)).status is CallStatus.PENDING
        assert (await refund(gate, 300, RUN_2)).status is CallStatus.EXECUTED
        assert ran == [300, 300] and len(seen) == 3
        assert await gate.needs_approval("issue_refund", {"amount": 201}, run=RUN_2)
        assert not await gate.needs_approval("issue_refund", {"amount": 200}, run=RUN_2)
    finally:
        await gate.aclose()


async def test_an_async_code_condition_of_the_history_and_a_one_argument_one(
    store: Store,
) -> None:
    async def third_call(call: ToolCall, history: History) -> bool:
        return history.run_count("issue_refund", "1h") >= 2

    policy = Policy(when=third_call, deny=lambda call: call.args["amount"] > 1000)
    gate = gate_on(store, Config())
    refunds(gate, policy)
    try:
        assert (await refund(gate, 1)).status is CallStatus.EXECUTED
        assert (await refund(gate, 2000)).status is CallStatus.REJECTED
        assert (await refund(gate, 1)).status is CallStatus.EXECUTED
        assert (await refund(gate, 1)).status is CallStatus.PENDING
    finally:
        await gate.aclose()


async def test_a_plain_policy_reads_and_records_no_history(store: Store) -> None:
    gate = gate_on(store, refunds_config("args.amount > 100"))
    refunds(gate)
    try:
        assert gate.policy_for(gate.tools["issue_refund"]).history_lookback is None
        assert (await refund(gate, 5)).status is CallStatus.EXECUTED
        assert await store.history("support", datetime(2000, 1, 1, tzinfo=UTC)) == []
    finally:
        await gate.aclose()


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("run_sum('issue_refund', 'amount', 'soon') > 1.0", "invalid duration 'soon'"),
        ("run_count('issue_refund', '0s') > 1", "it must be positive"),
        ("run_count('issue_refund', '400d') > 1", "longer than the longest allowed"),
        ("run_count('issue_refund', args.window) > 1", "must be quoted strings"),
        ("run_sum('issue_refund', '24h') > 1.0", "takes 3 arguments, not 2"),
        ("in_flight() > 1", "takes 1 arguments, not 0"),
    ],
)
def test_a_bad_limit_is_a_config_error_naming_the_file_and_key(
    tmp_path: Path, when: str, problem: str
) -> None:
    path = tmp_path / "signoff.toml"
    path.write_text(f'[[tools]]\nname = "issue_refund"\nwhen = "{when}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "[[tools]] 'issue_refund': when:" in message
    assert problem in message


def test_a_code_policys_history_window_is_checked() -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        Policy(when=lambda call, history: True, history_window="forever")
    assert Policy(when=lambda call, history: True).history_lookback == 86400.0
    assert Policy(when=lambda call, history: True, history_window="7d").history_lookback == (
        7 * 86400.0
    )
    assert Policy(when=lambda call: True).history_lookback is None
    assert Policy(when="run_count('t', '2d') > 1").history_lookback == 2 * 86400.0
