"""The Gate's seams for framework adapters: a call that does not wait, a policy check, tools
described by JSON Schema, and calls the caller runs (authorize, then report)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from signoff import (
    CallStatus,
    ConfigError,
    Gate,
    Policy,
    Principal,
    Run,
    Status,
    UnknownTool,
    UsageError,
)
from signoff.hooks import cancel, request_approval

PUBLISHER = Principal(sub="paul", role="publisher")
RUN = Run(agent_id="support", run_id="run-1")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "size": {"type": "integer", "minimum": 0}},
    "required": ["path"],
    "additionalProperties": False,
}


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")
    yield g
    await g.aclose()


def refund(gate: Gate, ran: list[float]) -> None:
    @gate.tool(
        policy=Policy(when=lambda ctx: ctx.args["amount"] > 100, editable=["amount"]),
    )
    async def issue_refund(order_id: str, amount: float) -> str:
        ran.append(amount)
        return f"refunded {amount}"


async def test_a_call_that_does_not_wait_is_pending_and_settles_when_called_again(
    gate: Gate,
) -> None:
    ran: list[float] = []
    refund(gate, ran)
    first = await gate.call(
        "issue_refund", {"order_id": "A", "amount": 250}, tool_call_id="t1", run=RUN, wait=False
    )
    assert first.status is CallStatus.PENDING
    assert first.request is not None and first.request.status is Status.PENDING
    assert first.is_error and '"approval_pending"' in first.to_model()
    again = await gate.call(
        "issue_refund", {"order_id": "A", "amount": 250}, tool_call_id="t1", run=RUN, wait=False
    )
    assert again.request is not None and again.request.id == first.request.id
    await gate.approve(first.request.id, by=PUBLISHER, modified_args={"amount": 99})
    done = await gate.call(
        "issue_refund", {"order_id": "A", "amount": 250}, tool_call_id="t1", run=RUN, wait=False
    )
    assert done.status is CallStatus.EXECUTED and done.result == "refunded 99.0"
    replay = await gate.call(
        "issue_refund", {"order_id": "A", "amount": 250}, tool_call_id="t1", run=RUN
    )
    assert replay.status is CallStatus.EXECUTED
    assert ran == [99]  # the resumed call ran once, with the approved arguments


async def test_a_call_that_does_not_wait_runs_at_once_when_no_human_is_needed(gate: Gate) -> None:
    ran: list[float] = []
    refund(gate, ran)
    outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 5}, wait=False)
    assert outcome.status is CallStatus.EXECUTED and ran == [5]


async def test_needs_approval_answers_without_asking_anyone(gate: Gate) -> None:
    ran: list[float] = []
    refund(gate, ran)
    assert await gate.needs_approval("issue_refund", {"order_id": "A", "amount": 250})
    assert not await gate.needs_approval("issue_refund", '{"order_id": "A", "amount": 5}')
    # arguments that do not parse fail closed
    assert await gate.needs_approval("issue_refund", {"order_id": "A"})
    assert await gate.needs_approval("issue_refund", "not json")
    with pytest.raises(UnknownTool):
        await gate.needs_approval("nope", {})
    assert await gate.pending() == [] and ran == []


async def test_needs_approval_follows_the_hooks(gate: Gate) -> None:
    ran: list[float] = []
    refund(gate, ran)
    gate.hook(lambda ctx: cancel("no refunds today") if ctx.args["order_id"] == "X" else None)
    gate.hook(lambda ctx: request_approval("audit") if ctx.args["order_id"] == "Y" else None)
    assert not await gate.needs_approval("issue_refund", {"order_id": "X", "amount": 500})
    assert await gate.needs_approval("issue_refund", {"order_id": "Y", "amount": 5})


async def test_a_json_schema_tool_is_validated_and_gets_one_dict(gate: Gate) -> None:
    seen: list[dict[str, Any]] = []

    def write(args: dict[str, Any]) -> str:
        seen.append(args)
        return "ok"

    tool = gate.add_tool("write_file", write, input_schema=SCHEMA, policy=Policy(when=False))
    assert tool.json_schema == SCHEMA
    bad = await gate.call("write_file", {"path": 3})
    assert bad.status is CallStatus.INVALID and "path" in (bad.message or "")
    good = await gate.call("write_file", {"path": "/tmp/x", "size": 2})
    assert good.status is CallStatus.EXECUTED and seen == [{"path": "/tmp/x", "size": 2}]


def test_a_json_schema_tool_needs_an_object_schema(gate: Gate) -> None:
    with pytest.raises(ConfigError, match="object"):
        gate.add_tool("t", input_schema={"type": "string"})
    with pytest.raises(ConfigError, match="invalid input schema"):
        gate.add_tool("t", input_schema={"type": "object", "properties": {"a": {"type": 3}}})


async def test_authorize_then_report_runs_elsewhere_once(gate: Gate) -> None:
    gate.add_tool("delete_file", input_schema=SCHEMA, policy=Policy(editable=["path"]))
    pending = await gate.authorize(
        "delete_file", {"path": "/a"}, tool_call_id="c1", run=RUN, wait=False
    )
    assert pending.status is CallStatus.PENDING and pending.request is not None
    await gate.approve(pending.request.id, by=PUBLISHER, modified_args={"path": "/b"})
    authorized = await gate.authorize("delete_file", {"path": "/a"}, tool_call_id="c1", run=RUN)
    assert authorized.status is CallStatus.AUTHORIZED
    assert authorized.final_args == {"path": "/b"} and not authorized.is_error
    assert authorized.request is not None and authorized.request.consumed_at is not None
    # the approval authorizes one run: asking again finds it spent
    twice = await gate.authorize("delete_file", {"path": "/a"}, tool_call_id="c1", run=RUN)
    assert twice.status is CallStatus.ALREADY_CONSUMED
    done = await gate.report(authorized, result={"deleted": "/b"})
    assert done.status is CallStatus.EXECUTED and done.executed_args == {"path": "/b"}
    assert done.request is not None and done.request.outcome is not None
    assert done.request.outcome.status == "succeeded"
    with pytest.raises(UsageError):
        await gate.report(done, result=None)


async def test_report_records_a_failure(gate: Gate) -> None:
    gate.add_tool("delete_file", input_schema=SCHEMA, policy=Policy(min_role="editor"))
    asked = await gate.authorize(
        "delete_file", {"path": "/a"}, tool_call_id="c2", run=RUN, wait=False
    )
    assert asked.request is not None
    await gate.approve(asked.request.id, by=PUBLISHER)
    authorized = await gate.authorize("delete_file", {"path": "/a"}, tool_call_id="c2", run=RUN)
    failed = await gate.report(authorized, error=OSError("disk full"))
    assert failed.status is CallStatus.FAILED and failed.is_error
    assert failed.request is not None and failed.request.outcome is not None
    assert failed.request.outcome.status == "failed"


async def test_authorize_without_a_human_needs_no_request(gate: Gate) -> None:
    gate.add_tool("read_file", input_schema=SCHEMA, policy=Policy(when=False))
    authorized = await gate.authorize("read_file", {"path": "/a"})
    assert authorized.status is CallStatus.AUTHORIZED and authorized.request is None
    done = await gate.report(authorized, result="contents")
    assert done.status is CallStatus.EXECUTED and done.to_model() == "contents"


async def test_a_tool_without_a_function_cannot_be_called_directly(gate: Gate) -> None:
    gate.add_tool("remote", input_schema=SCHEMA, policy=Policy(when=False))
    outcome = await gate.call("remote", {"path": "/a"})
    assert outcome.status is CallStatus.FAILED and "gate.authorize" in (outcome.message or "")
