"""The Gate: decorator, call(), hooks, policy verdicts, and what the model is told."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from signoff import (
    ApprovalTimeout,
    CallStatus,
    Cancelled,
    ConfigError,
    Conflict,
    Forbidden,
    Gate,
    InvalidArguments,
    InvalidEdit,
    Policy,
    Principal,
    Rejected,
    Run,
    SignoffError,
    Status,
    ToolCall,
    cancel,
    request_approval,
    skip,
)
from signoff.approvals import Approvals, LocalApprovals
from signoff.config import parse_config
from signoff.errors import Unavailable
from signoff.testing import Approve, Reject, ScriptedApprover

PUBLISHER = Principal(sub="paul", role="publisher")
ADMIN = Principal(sub="ada", role="admin")
RUN = Run(agent_id="support", run_id="run-1")


class Ledger:
    """Records every time a tool body runs, and with what."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")
    yield g
    await g.aclose()


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def refund_tool(gate: Gate, ledger: Ledger, **policy: Any) -> Any:
    defaults: dict[str, Any] = {
        "when": lambda ctx: ctx.args["amount"] > 100,
        "min_role": "publisher",
        "reason": lambda ctx: f"Refund ${ctx.args['amount']} for {ctx.args['order_id']}",
        "reject_message": "Refund was not approved.",
        "timeout": 300,
        "editable": ["amount"],
    }
    defaults.update(policy)

    @gate.tool(policy=Policy(**defaults))
    async def issue_refund(order_id: str, amount: Annotated[float, Field(gt=0)]) -> dict[str, Any]:
        """Issue a customer refund."""
        ledger.calls.append({"order_id": order_id, "amount": amount})
        return {"refund_id": f"rf_{order_id.lower()}", "amount": amount}

    return issue_refund


# -- declaring tools -------------------------------------------------------------------


async def test_schema_and_description_come_from_the_function(gate: Gate, ledger: Ledger) -> None:
    tool = refund_tool(gate, ledger)
    assert tool.name == "issue_refund"
    assert tool.description == "Issue a customer refund."
    schema = tool.json_schema
    assert schema["required"] == ["order_id", "amount"]
    assert schema["properties"]["amount"]["exclusiveMinimum"] == 0
    assert schema["additionalProperties"] is False


async def test_any_parameter_name_works(gate: Gate) -> None:
    @gate.tool(policy=Policy(when=False))
    def odd(json: str, copy: int = 1, model_config: bool = False) -> list[Any]:
        return [json, copy, model_config]

    assert await odd(json="j", copy=2) == ["j", 2, False]
    assert odd.json_schema["required"] == ["json"]


def test_bad_tool_declarations(gate: Gate) -> None:
    with pytest.raises(ConfigError, match=r"\*args"):

        @gate.tool
        def star(*args: int) -> None: ...

    @gate.tool
    def once() -> None: ...

    with pytest.raises(ConfigError, match="already gated"):

        @gate.tool(name="once")
        def twice() -> None: ...

    with pytest.raises(ConfigError, match="unknown role"):

        @gate.tool(policy=Policy(min_role="overlord"))
        def bossy() -> None: ...


async def test_sync_and_async_tools_pass_through(gate: Gate) -> None:
    threads: list[str] = []

    @gate.tool(policy=Policy(when=False))
    def lookup(order_id: str) -> dict[str, str]:
        threads.append(threading.current_thread().name)
        return {"order_id": order_id, "status": "shipped"}

    @gate.tool(policy=Policy(when=False))
    async def alookup(order_id: str, verbose: bool = False) -> str:
        return f"{order_id}:{verbose}"

    assert await lookup(order_id="A") == {"order_id": "A", "status": "shipped"}
    assert await lookup("B") == {"order_id": "B", "status": "shipped"}  # positional works
    assert await alookup("C", verbose=True) == "C:True"
    # a sync tool runs off the event loop's thread
    assert threads and all(name != threading.main_thread().name for name in threads)


async def test_pass_through_creates_no_request(gate: Gate, ledger: Ledger) -> None:
    issue_refund = refund_tool(gate, ledger)
    assert await issue_refund(order_id="A", amount=50) == {"refund_id": "rf_a", "amount": 50}
    assert await gate.pending() == []


# -- call(): bad input is a clear result, never a crash --------------------------------


async def test_unknown_tool(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    outcome = await gate.call("drop_database", {"now": True}, tool_call_id="toolu_9")
    assert outcome.status is CallStatus.INVALID
    body = json.loads(outcome.to_model())
    assert body["error"] == "invalid_tool_call"
    assert "unknown tool 'drop_database'" in body["message"] and "issue_refund" in body["message"]
    assert outcome.is_error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"order_id": "A"}, "amount: Field required"),
        ({"order_id": "A", "amount": -5}, "amount: Input should be greater than 0"),
        ({"order_id": "A", "amount": 5, "extra": 1}, "extra: Extra inputs are not permitted"),
        ('{"order_id": "A", "amount": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
async def test_invalid_arguments(gate: Gate, ledger: Ledger, args: Any, message: str) -> None:
    refund_tool(gate, ledger)
    outcome = await gate.call("issue_refund", args)
    assert outcome.status is CallStatus.INVALID
    assert message in json.loads(outcome.to_model())["message"]
    assert ledger.calls == []


async def test_decorated_call_with_bad_arguments_raises(gate: Gate, ledger: Ledger) -> None:
    issue_refund = refund_tool(gate, ledger)
    with pytest.raises(InvalidArguments, match="amount"):
        await issue_refund(order_id="A", amount="lots")


async def test_arguments_are_parsed_before_the_policy_sees_them(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    outcome = await gate.call("issue_refund", '{"order_id": "A", "amount": "50"}')
    assert outcome.status is CallStatus.EXECUTED
    assert ledger.calls == [{"order_id": "A", "amount": 50.0}]


# -- the approval paths and what the model is told (CONTRACT §4) -------------------------


async def test_approved_call_runs_with_final_args(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    async with ScriptedApprover(gate, by=PUBLISHER):
        outcome = await gate.call(
            "issue_refund", {"order_id": "ORD-1", "amount": 250}, tool_call_id="toolu_1", run=RUN
        )
    assert outcome.status is CallStatus.EXECUTED
    assert outcome.to_model() == json.dumps({"refund_id": "rf_ord-1", "amount": 250.0})
    assert not outcome.is_error
    assert ledger.calls == [{"order_id": "ORD-1", "amount": 250.0}]
    assert outcome.request is not None
    request = outcome.request
    assert request.status is Status.APPROVED and request.consumed_at is not None
    assert request.outcome is not None and request.outcome.status == "succeeded"
    assert request.reason == "Refund $250.0 for ORD-1"
    assert request.tool_call_id == "toolu_1"
    assert request.run == RUN and request.requested_by == "support"


async def test_approved_with_edits_runs_with_exactly_the_final_args(
    gate: Gate, ledger: Ledger
) -> None:
    """Invariant 4: proposed, approved and executed args kept apart; executed == final."""
    refund_tool(gate, ledger)
    script = lambda req: Approve(modified_args={"amount": 100})  # noqa: E731
    async with ScriptedApprover(gate, script, by=PUBLISHER):
        outcome = await gate.call("issue_refund", {"order_id": "ORD-1", "amount": 250}, run=RUN)
    assert outcome.status is CallStatus.EXECUTED
    assert outcome.args == {"order_id": "ORD-1", "amount": 250.0}
    assert outcome.final_args == {"order_id": "ORD-1", "amount": 100}
    assert outcome.executed_args == {"order_id": "ORD-1", "amount": 100.0}
    assert ledger.calls == [outcome.executed_args]
    told = json.loads(outcome.to_model())
    assert told["result"] == {"refund_id": "rf_ord-1", "amount": 100.0}
    assert told["approval"]["modified_by_approver"] == {
        "amount": {"proposed": 250.0, "approved": 100}
    }
    assert "amount" in told["approval"]["note"]


async def test_rejected_call_tells_the_model_why(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    async with ScriptedApprover(gate, lambda r: Reject("Amount exceeds limit"), by=PUBLISHER):
        outcome = await gate.call("issue_refund", {"order_id": "ORD-1", "amount": 250})
    assert outcome.status is CallStatus.REJECTED
    assert outcome.is_error
    assert json.loads(outcome.to_model()) == {
        "error": "approval_rejected",
        "message": "Refund was not approved. Reason: Amount exceeds limit",
        "tool": "issue_refund",
        "parameters": {"order_id": "ORD-1", "amount": 250.0},
    }
    assert ledger.calls == []


async def test_rejection_without_a_reject_message_passes_the_reason(gate: Gate) -> None:
    @gate.tool(policy=Policy(min_role="editor"))
    async def publish_blog_post(title: str) -> str:
        return title

    async with ScriptedApprover(gate, lambda r: Reject("Not on Fridays")):
        outcome = await gate.call("publish_blog_post", {"title": "Hi"})
    assert json.loads(outcome.to_model())["message"] == "Not on Fridays"


async def test_timeout_tells_the_model(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger, timeout=0.2)
    outcome = await asyncio.wait_for(
        gate.call("issue_refund", {"order_id": "ORD-1", "amount": 250}), 5
    )
    assert outcome.status is CallStatus.TIMEOUT
    assert json.loads(outcome.to_model()) == {
        "error": "approval_timeout",
        "message": "Approval request timed out after 0.2 seconds",
        "tool": "issue_refund",
        "parameters": {"order_id": "ORD-1", "amount": 250.0},
    }
    assert ledger.calls == []


def test_timeout_message_wording() -> None:
    from signoff._util import human_duration

    assert human_duration(300) == "5 minutes"
    assert human_duration(60) == "1 minute"
    assert human_duration(5400) == "1 hour 30 minutes"
    assert human_duration(45) == "45 seconds"


async def test_cancelled_request_tells_the_model(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    task = asyncio.create_task(
        gate.call("issue_refund", {"order_id": "ORD-1", "amount": 250}, run=RUN)
    )
    while not (pending := await gate.pending()):
        await asyncio.sleep(0.005)
    await gate.cancel(pending[0].id, reason="user left")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.status is CallStatus.CANCELLED
    body = json.loads(outcome.to_model())
    assert body["error"] == "approval_cancelled"
    assert body["tool"] == "issue_refund"
    assert body["message"] == "The approval request was cancelled. Reason: user left"
    assert ledger.calls == []


async def test_decorated_tool_raises_when_not_run(gate: Gate, ledger: Ledger) -> None:
    issue_refund = refund_tool(gate, ledger)
    async with ScriptedApprover(gate, lambda r: Reject("no"), by=PUBLISHER):
        with pytest.raises(Rejected) as rejected:
            await issue_refund(order_id="ORD-1", amount=250)
    assert rejected.value.outcome.status is CallStatus.REJECTED
    issue_refund_fast = refund_tool(Gate("memory://"), ledger, timeout=0.05)
    with pytest.raises(ApprovalTimeout):
        await issue_refund_fast(order_id="ORD-1", amount=250)
    assert ledger.calls == []


async def test_a_failing_tool_is_reported(gate: Gate) -> None:
    @gate.tool(policy=Policy(min_role="editor"))
    async def flaky(n: int) -> int:
        raise ValueError("approvals down")

    async with ScriptedApprover(gate):
        outcome = await gate.call("flaky", {"n": 1})
        assert outcome.status is CallStatus.FAILED
        body = json.loads(outcome.to_model())
        assert body["error"] == "tool_failed" and "approvals down" in body["message"]
        assert outcome.request is not None and outcome.request.outcome is not None
        assert outcome.request.outcome.status == "failed"
        with pytest.raises(ValueError, match="approvals down"):
            await flaky(n=2)


async def test_policy_deny(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger, deny="args.amount > 10000")
    outcome = await gate.call("issue_refund", {"order_id": "X", "amount": 50000})
    assert outcome.status is CallStatus.REJECTED
    assert json.loads(outcome.to_model())["message"] == "Refund was not approved."
    assert await gate.pending() == []
    assert ledger.calls == []


async def test_a_raising_policy_means_approval(gate: Gate, ledger: Ledger) -> None:
    """Invariant 1: a policy that raises is never a pass."""
    refund_tool(gate, ledger, when=lambda ctx: 1 / 0)
    task = asyncio.create_task(gate.call("issue_refund", {"order_id": "A", "amount": 1}))
    while not (pending := await gate.pending()):
        await asyncio.sleep(0.005)
    assert "ZeroDivisionError" in pending[0].context["policy_note"]
    assert ledger.calls == []
    await gate.reject(pending[0].id, by=ADMIN, reason="no")
    assert (await task).status is CallStatus.REJECTED


# -- hooks -----------------------------------------------------------------------------


async def test_hook_skip(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)

    @gate.hook
    def cached(ctx: ToolCall) -> Any:
        return skip({"cached": True}) if ctx.args["order_id"] == "CACHED" else None

    outcome = await gate.call("issue_refund", {"order_id": "CACHED", "amount": 999})
    assert outcome.status is CallStatus.SKIPPED
    assert json.loads(outcome.to_model()) == {"cached": True}
    assert ledger.calls == [] and await gate.pending() == []


async def test_hook_cancel(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)

    @gate.hook
    async def business_hours(ctx: ToolCall) -> Any:
        return cancel("Refunds are closed at weekends.")

    outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 5})
    assert outcome.status is CallStatus.CANCELLED
    assert json.loads(outcome.to_model())["message"] == "Refunds are closed at weekends."
    assert ledger.calls == []


async def test_hook_request_approval_overrides_the_policy(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)  # amount 5 would pass without approval

    @gate.hook
    def new_customer(ctx: ToolCall) -> Any:
        return request_approval("First refund for this customer", min_role="admin")

    seen: list[Any] = []

    def script(request: Any) -> Approve:
        seen.append(request)
        return Approve()

    async with ScriptedApprover(gate, script, by=ADMIN):
        outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 5})
    assert outcome.status is CallStatus.EXECUTED
    assert seen[0].reason == "First refund for this customer"
    assert seen[0].policy.min_role == "admin"


async def test_a_raising_hook_means_approval(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)

    @gate.hook
    def broken(ctx: ToolCall) -> Any:
        raise RuntimeError("policy service down")

    async with ScriptedApprover(gate, lambda r: Reject("no"), by=ADMIN):
        outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 5})
    assert outcome.status is CallStatus.REJECTED
    assert outcome.request is not None and "policy service down" in (outcome.request.reason or "")
    assert ledger.calls == []


# -- the config file's policy is a floor in an embedded gate too -----------------------


async def test_config_floor_applies_to_code_policies(ledger: Ledger) -> None:
    config = parse_config({"always_require_approval": ["issue_refund"], "tools": []})
    gate = Gate("memory://", config=config)
    refund_tool(gate, ledger, when=False)
    async with ScriptedApprover(gate, lambda r: Reject("config says ask"), by=ADMIN):
        outcome = await gate.call("issue_refund", {"order_id": "A", "amount": 5})
    assert outcome.status is CallStatus.REJECTED
    await gate.aclose()


async def test_config_policy_for_a_tool_without_one(ledger: Ledger) -> None:
    config = parse_config(
        {"tools": [{"name": "lookup", "when": "args.id == 'secret'", "min_role": "admin"}]}
    )
    gate = Gate("memory://", config=config)

    @gate.tool
    async def lookup(id: str) -> str:
        return id

    assert (await gate.call("lookup", {"id": "public"})).status is CallStatus.EXECUTED
    async with ScriptedApprover(gate, by=PUBLISHER) as approver:
        task = asyncio.create_task(gate.call("lookup", {"id": "secret"}))
        while not approver.errors:
            await asyncio.sleep(0.005)
        assert isinstance(approver.errors[0], Forbidden)  # publisher is below admin
        [pending] = await gate.pending()
        await gate.approve(pending.id, by=ADMIN)
        assert (await task).status is CallStatus.EXECUTED
    await gate.aclose()


# -- the approver's side ----------------------------------------------------------------


async def test_approver_errors(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    task = asyncio.create_task(gate.call("issue_refund", {"order_id": "A", "amount": 500}, run=RUN))
    while not (pending := await gate.pending()):
        await asyncio.sleep(0.005)
    request_id = pending[0].id
    with pytest.raises(Forbidden):
        await gate.approve(request_id, by=Principal(sub="e", role="editor"))
    with pytest.raises(Forbidden):
        await gate.approve(request_id, by=Principal(sub="support", role="admin"))
    with pytest.raises(InvalidEdit):
        await gate.approve(request_id, by=ADMIN, modified_args={"order_id": "B"})
    with pytest.raises(SignoffError, match="who decides"):
        await gate.approve(request_id)
    await gate.approve(request_id, by=ADMIN)
    with pytest.raises(Conflict):
        await gate.reject(request_id, by=ADMIN, reason="too late")
    assert (await task).status is CallStatus.EXECUTED


# -- retries and resumption: one request, one execution ----------------------------------


async def test_a_retried_call_reuses_its_request_and_does_not_run_twice(
    gate: Gate, ledger: Ledger
) -> None:
    refund_tool(gate, ledger)
    args = {"order_id": "ORD-1", "amount": 250}
    async with ScriptedApprover(gate, by=PUBLISHER) as approver:
        first = await gate.call("issue_refund", args, tool_call_id="toolu_1", run=RUN)
        again = await gate.call("issue_refund", args, tool_call_id="toolu_1", run=RUN)
    assert first.status is again.status is CallStatus.EXECUTED
    assert len(approver.decided) == 1
    assert first.request is not None and again.request is not None
    assert first.request.id == again.request.id
    assert ledger.calls == [{"order_id": "ORD-1", "amount": 250.0}]
    assert json.loads(again.to_model()) == {"refund_id": "rf_ord-1", "amount": 250.0}


async def test_a_consumed_approval_without_outcome_is_not_run_again(
    gate: Gate, ledger: Ledger
) -> None:
    """A crash between consume and outcome: the retry must not run the tool (at most once)."""
    refund_tool(gate, ledger)
    approvals = gate.approvals
    assert isinstance(approvals, LocalApprovals)
    service = approvals.service
    await gate.start()
    from signoff.models import RequestSpec

    spec = RequestSpec(
        tool="issue_refund",
        args={"order_id": "ORD-1", "amount": 250.0},
        tool_call_id="toolu_1",
        run=RUN,
        policy={"min_role": "publisher"},
    )
    agent = Principal(sub="support", kind="agent")
    request = (await service.submit(spec, agent)).request
    await service.decide(request.id, PUBLISHER, "approve")
    await service.consume(request.id, agent)  # ... and then the process died
    outcome = await gate.call(
        "issue_refund", {"order_id": "ORD-1", "amount": 250}, tool_call_id="toolu_1", run=RUN
    )
    assert outcome.status is CallStatus.ALREADY_CONSUMED
    assert json.loads(outcome.to_model())["error"] == "approval_already_used"
    assert ledger.calls == []


async def test_concurrent_identical_calls_run_the_tool_once(gate: Gate, ledger: Ledger) -> None:
    refund_tool(gate, ledger)
    args = {"order_id": "ORD-1", "amount": 250}
    async with ScriptedApprover(gate, by=PUBLISHER):
        outcomes = await asyncio.gather(
            *(gate.call("issue_refund", args, tool_call_id="toolu_1", run=RUN) for _ in range(20))
        )
    assert len(ledger.calls) == 1
    assert sum(o.status is CallStatus.EXECUTED and o.message is None for o in outcomes) == 1


# -- fail closed when approval cannot be obtained (invariant 1) ----------------------------


class DownBackend(LocalApprovals):
    def __init__(self, gate_backend: LocalApprovals, fail: Literal["submit", "wait", "consume"]):
        super().__init__(gate_backend.service)
        self.fail = fail

    async def submit(self, spec: Any) -> Any:
        if self.fail == "submit":
            raise Unavailable("connection refused")
        return await super().submit(spec)

    async def wait(self, request_id: str, run: Run) -> Any:
        if self.fail == "wait":
            raise Unavailable("connection reset")
        return await super().wait(request_id, run)

    async def consume(self, request: Any) -> Any:
        if self.fail == "consume":
            raise Unavailable("connection reset")
        return await super().consume(request)


@pytest.mark.parametrize("fail", ["submit", "wait", "consume"])
async def test_unreachable_backend_means_not_run(
    ledger: Ledger, fail: Literal["submit", "wait", "consume"]
) -> None:
    base = Gate("memory://")
    assert isinstance(base.approvals, LocalApprovals)
    gate = Gate(DownBackend(base.approvals, fail))
    refund_tool(gate, ledger)
    async with ScriptedApprover(gate, by=PUBLISHER):
        outcome = await asyncio.wait_for(
            gate.call("issue_refund", {"order_id": "A", "amount": 500}), 5
        )
    assert outcome.status is CallStatus.UNAVAILABLE
    assert json.loads(outcome.to_model())["error"] == "approval_unavailable"
    assert ledger.calls == []
    await gate.aclose()


def test_backend_is_an_abc() -> None:
    assert issubclass(LocalApprovals, Approvals)


# -- persistence on SQLite ----------------------------------------------------------------


async def test_requests_survive_a_new_gate_on_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    first = Gate(url)
    refund_tool(first, Ledger())
    task = asyncio.create_task(first.call("issue_refund", {"order_id": "X", "amount": 500}))
    while not await first.pending():
        await asyncio.sleep(0.005)
    task.cancel()  # the agent goes away while its call waits
    await first.aclose()

    second = Gate(url)
    [pending] = await second.pending()
    assert pending.args == {"order_id": "X", "amount": 500.0}
    await second.approve(pending.id, by=ADMIN)
    await second.aclose()
    third = Gate(url)
    assert (await third.get(pending.id)).status is Status.APPROVED
    await third.aclose()


async def test_cancelled_exception_type(gate: Gate, ledger: Ledger) -> None:
    issue_refund = refund_tool(gate, ledger)

    @gate.hook
    def stop(ctx: ToolCall) -> Any:
        return cancel("stopped")

    with pytest.raises(Cancelled, match="stopped"):
        await issue_refund(order_id="A", amount=1)


def test_compact_duration() -> None:
    from signoff._util import compact_duration

    assert compact_duration(596) == "9m 56s"
    assert compact_duration(5400) == "1h 30m"
    assert compact_duration(0.4) == "0s"
    assert compact_duration(90061) == "1d 1h"
