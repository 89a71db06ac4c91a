"""Shadow mode: a tool entry with ``mode = "shadow"`` never makes a call wait; what its
policy would have done is audited, counted, and replayed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signoff import CallStatus, ConfigError, Gate, Run
from signoff.approvals import LocalApprovals
from signoff.config import Config, parse_config
from signoff.replay import replay, store_history
from signoff.shadow import SHADOW_EVENT, ShadowRecord, shadow_records
from signoff.stores.base import Store

RUN = Run(agent_id="support", run_id="run-1")


def refund_config(mode: str | None) -> Config:
    entry: dict[str, Any] = {
        "name": "issue_refund",
        "when": "args.amount > 100",
        "deny": "args.amount > 1000",
        "min_role": "publisher",
        "quorum": 2,
        "reason": "Refund ${args.amount}",
    }
    if mode is not None:
        entry["mode"] = mode
    return parse_config({"tools": [entry]})


def refund_tool(gate: Gate) -> list[int]:
    """Gates ``issue_refund``; the list it returns is every amount the tool body ran with."""
    ran: list[int] = []

    @gate.tool
    async def issue_refund(order_id: str, amount: int) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    return ran


@pytest.fixture(params=["memory", "sqlite"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 's.db'}"


@pytest.fixture
async def shadow_gate(target: str) -> AsyncIterator[tuple[Gate, list[int]]]:
    gate = Gate(target, config=refund_config("shadow"))
    yield gate, refund_tool(gate)
    await gate.aclose()


def store_of(gate: Gate) -> Store:
    assert isinstance(gate.approvals, LocalApprovals)
    return gate.approvals.service.store


async def records(gate: Gate) -> list[ShadowRecord]:
    return [r async for r in shadow_records(store_of(gate))]


async def test_a_shadow_tool_runs_at_once_and_the_verdict_is_audited(
    shadow_gate: tuple[Gate, list[int]],
) -> None:
    gate, ran = shadow_gate
    # nobody decides anything here: a call that waited would time out the test
    outcome = await asyncio.wait_for(
        gate.call("issue_refund", {"order_id": "A", "amount": 500}, run=RUN), 5
    )
    assert outcome.status is CallStatus.EXECUTED and ran == [500]
    assert await gate.pending() == []
    (record,) = await records(gate)
    assert (record.tool, record.verdict, record.min_role, record.quorum) == (
        "issue_refund",
        "ask",
        "publisher",
        2,
    )
    assert record.reason == "Refund $500" and record.args == {"order_id": "A", "amount": 500}
    assert record.run.run_id == "run-1" and record.position is not None
    events = await store_of(gate).audit_events()
    assert [e.type for e in events] == [SHADOW_EVENT]


async def test_a_deny_in_shadow_mode_still_runs_and_is_recorded_as_would_deny(
    shadow_gate: tuple[Gate, list[int]],
) -> None:
    gate, ran = shadow_gate
    outcome = await asyncio.wait_for(
        gate.call("issue_refund", {"order_id": "B", "amount": 5000}, run=RUN), 5
    )
    assert outcome.status is CallStatus.EXECUTED and ran == [5000]
    small = await gate.call("issue_refund", {"order_id": "C", "amount": 5}, run=RUN)
    assert small.status is CallStatus.EXECUTED
    assert [(r.verdict, r.min_role) for r in await records(gate)] == [
        ("deny", "publisher"),
        ("run", None),
    ]
    assert not await gate.needs_approval("issue_refund", {"order_id": "D", "amount": 500})


async def test_replay_counts_shadow_records(shadow_gate: tuple[Gate, list[int]]) -> None:
    gate, _ = shadow_gate
    for amount in (5, 500, 5000):
        await gate.call("issue_refund", {"order_id": "A", "amount": amount}, run=RUN)
    strict = parse_config({"tools": [{"name": "issue_refund", "when": True}]})
    report = await replay(strict, store_history(store_of(gate), None))
    assert dict(report.counts["issue_refund"]) == {"ask": 3}
    assert dict(report.happened["issue_refund"]) == {"ran": 3}
    # every shadow call ran unasked, whatever its recorded verdict: each would now ask
    assert dict(report.changed) == {"ask": 3}
    lenient = parse_config({"tools": [{"name": "issue_refund", "when": False}]})
    report = await replay(lenient, store_history(store_of(gate), None))
    assert dict(report.counts["issue_refund"]) == {"run": 3} and not report.changed


async def test_in_enforce_mode_nothing_changes(target: str) -> None:
    for mode in (None, "enforce"):
        gate = Gate(target, config=refund_config(mode))
        ran = refund_tool(gate)

        try:
            waiting = await gate.call(
                "issue_refund", {"order_id": "A", "amount": 500}, run=RUN, wait=False
            )
            assert waiting.status is CallStatus.PENDING and ran == []
            denied = await gate.call("issue_refund", {"order_id": "B", "amount": 5000}, run=RUN)
            assert denied.status is CallStatus.REJECTED and ran == []
            assert await records(gate) == []
        finally:
            await gate.aclose()


def test_mode_is_checked_in_the_config_file() -> None:
    with pytest.raises(ConfigError, match=r"tools\.0\.mode"):
        parse_config({"tools": [{"name": "a", "mode": "dry-run"}]})
    with pytest.raises(ConfigError, match="contradicts always_require_approval"):
        parse_config({"always_require_approval": ["a"], "tools": [{"name": "a", "mode": "shadow"}]})
    assert parse_config({"tools": [{"name": "a", "mode": "shadow"}]}).shadow_tools == {"a"}


def test_a_malformed_audit_event_is_not_a_shadow_record() -> None:
    from signoff.audit import AuditEvent

    for record in (
        '{"type": "shadow.verdict", "data": {}}',
        '{"type": "shadow.verdict", "at": "x", "data": {"tool": "a", "verdict": "maybe"}}',
        '{"type": "request.created", "data": {}}',
        "[]",
    ):
        assert ShadowRecord.from_event(AuditEvent(position=1, record=record)) is None


async def test_shadow_records_seal_and_verify_with_the_rest_of_the_log(
    shadow_gate: tuple[Gate, list[int]],
) -> None:
    gate, _ = shadow_gate
    await gate.call("issue_refund", {"order_id": "A", "amount": 500}, run=RUN)
    assert isinstance(gate.approvals, LocalApprovals)
    audit_log = gate.approvals.service.audit_log
    assert await audit_log.seal() == 1
    verification = await audit_log.verify()
    assert verification.ok and verification.sealed == 1, verification
