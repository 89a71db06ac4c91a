"""Session-aware limits under attack: windows that are too long, totals over arguments that
are not numbers, an agent that changes its run id to start over, a history that cannot be
read. Every one asks a human (or is refused when the config loads); none crashes."""

from __future__ import annotations

from typing import Any

import pytest

from signoff import CallStatus, ConfigError, Gate, Policy, Run
from signoff.config import Config, parse_config
from signoff.history import History
from signoff.models import ToolCall
from signoff.stores.base import Store
from tests.test_limits import gate_on

ANY_ARGS = {"type": "object"}


def tool(gate: Gate, policy: Policy | None = None) -> list[Any]:
    ran: list[Any] = []
    gate.add_tool("pay", ran.append, input_schema=ANY_ARGS, policy=policy)
    return ran


def limit(when: str) -> Config:
    return parse_config({"tools": [{"name": "pay", "when": when}]})


async def pay(gate: Gate, args: dict[str, Any], run_id: str | None = "r1") -> CallStatus:
    run = Run(agent_id="mallory", run_id=run_id)
    return (await gate.call("pay", args, run=run, wait=False)).status


@pytest.mark.parametrize("window", ["99999999999999999999d", "367d", "1e9d", "-1h", "inf"])
def test_a_huge_or_strange_window_in_the_config_is_refused_at_load(window: str) -> None:
    with pytest.raises(ConfigError, match="when:"):
        limit(f"run_count('pay', '{window}') > 1")


async def test_a_huge_window_asked_for_in_code_asks(store: Store) -> None:
    def greedy(call: ToolCall, history: History) -> bool:
        return history.agent_count("pay", "99999999999999999999d") > 1_000_000

    gate = gate_on(store, Config())
    ran = tool(gate, Policy(when=greedy))
    try:
        assert await pay(gate, {"amount": 1}) is CallStatus.PENDING
        # longer than what was read (24h by default) is not answered from a shorter read
        within = Policy(when=lambda call, history: history.run_count("pay", "2d") > 5)
        assert (await within.verdict(ToolCall("pay", {}), None)).note is not None
        assert ran == []
    finally:
        await gate.aclose()


@pytest.mark.parametrize("amount", ["lots", None, True, [1], {"x": 1}])
async def test_a_total_over_something_that_is_not_a_number_asks(store: Store, amount: Any) -> None:
    gate = gate_on(store, limit("run_sum('pay', 'amount', '1h') > 100.0"))
    ran = tool(gate)
    try:
        # nothing before it: the total is 0 and it runs, and is recorded as it was given
        assert await pay(gate, {"amount": amount}) is CallStatus.EXECUTED
        # a total that cannot be computed truthfully asks
        assert await pay(gate, {"amount": 1}) is CallStatus.PENDING
        assert len(ran) == 1
    finally:
        await gate.aclose()


async def test_a_total_that_overflows_asks(store: Store) -> None:
    gate = gate_on(store, limit("run_sum('pay', 'amount', '1h') < 0.0"))
    tool(gate)
    try:
        assert await pay(gate, {"amount": 1e308}) is CallStatus.EXECUTED
        assert await pay(gate, {"amount": 1e308}) is CallStatus.EXECUTED
        assert await pay(gate, {"amount": 1}) is CallStatus.PENDING  # the total is infinite
    finally:
        await gate.aclose()


async def test_a_missing_field_asks(store: Store) -> None:
    gate = gate_on(store, limit("agent_sum('pay', 'amount', '1h') > 100.0"))
    tool(gate)
    try:
        assert await pay(gate, {"note": "no amount"}) is CallStatus.EXECUTED
        assert await pay(gate, {"amount": 1}) is CallStatus.PENDING
    finally:
        await gate.aclose()


async def test_changing_the_run_id_does_not_reset_the_agents_history(store: Store) -> None:
    gate = gate_on(store, limit("agent_sum('pay', 'amount', '24h') + double(args.amount) > 100.0"))
    ran = tool(gate)
    try:
        assert await pay(gate, {"amount": 60}, run_id="r1") is CallStatus.EXECUTED
        assert await pay(gate, {"amount": 60}, run_id="fresh-run") is CallStatus.PENDING
        assert await pay(gate, {"amount": 60}, run_id=None) is CallStatus.PENDING
        assert len(ran) == 1
    finally:
        await gate.aclose()


async def test_a_run_limit_and_an_agent_limit_together_hold_without_a_run_id(
    store: Store,
) -> None:
    # calls without a run id are no run: run_* count nothing for them, agent_* still hold
    when = "run_count('pay', '1h') >= 1 || agent_count('pay', '1h') >= 2"
    gate = gate_on(store, limit(when))
    tool(gate)
    try:
        assert await pay(gate, {}, run_id=None) is CallStatus.EXECUTED
        assert await pay(gate, {}, run_id=None) is CallStatus.EXECUTED
        assert await pay(gate, {}, run_id=None) is CallStatus.PENDING
    finally:
        await gate.aclose()


async def test_a_history_that_cannot_be_read_asks() -> None:
    # a server that cannot be reached cannot tell the history: the limit fails closed
    gate = Gate("http://127.0.0.1:9", token="t", config=limit("run_count('pay', '1h') > 5"))
    tool(gate)
    try:
        assert await gate.needs_approval("pay", {"amount": 1})
    finally:
        await gate.aclose()


async def test_a_limit_that_raises_in_code_asks(store: Store) -> None:
    def broken(call: ToolCall, history: History) -> bool:
        raise RuntimeError("boom")

    gate = gate_on(store, Config())
    tool(gate, Policy(when=broken))
    try:
        assert await pay(gate, {}) is CallStatus.PENDING
    finally:
        await gate.aclose()
