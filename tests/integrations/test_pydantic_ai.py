"""Pydantic AI: the real ``pydantic_ai`` Agent, its FunctionModel playing the model, and
its tools behind a :class:`SignoffToolset` (inline waits and deferred tools)."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolApproved,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from signoff import Gate, MissingDependency, Run
from signoff.integrations.pydantic_ai import METADATA_KEY, SignoffToolset, deferred_tool_results
from signoff.testing import Approve, Reject, ScriptedApprover

from .fake_providers import PUBLISHER, wait_for_pending
from .frameworks import Ran, edited, policies, rejected, timed_out

RUN = Run(agent_id="support", run_id="conv-1")
REFUND = {"order_id": "ORD-1", "amount": 250.0}


def scripted(*calls: ToolCallPart) -> FunctionModel:
    """A model that makes ``calls`` in its first turn, then reports what it was told."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        told = tool_results(messages)
        if told:
            return ModelResponse(parts=[TextPart(json.dumps(told, sort_keys=True))])
        return ModelResponse(parts=list(calls))

    return FunctionModel(respond)


def tool_results(messages: list[ModelMessage]) -> dict[str, list[str]]:
    """tool_call_id → [outcome, content as text] of the latest tool results."""
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    return {
        part.tool_call_id: [part.outcome, part.model_response_str(wrap_if_error=False)]
        for part in last.parts
        if isinstance(part, ToolReturnPart)
    }


def refund_call(call_id: str = "tc-1", amount: float = 250.0) -> ToolCallPart:
    return ToolCallPart("issue_refund", {"order_id": "ORD-1", "amount": amount}, call_id)


def shop_toolset(ran: Ran) -> FunctionToolset[None]:
    toolset: FunctionToolset[None] = FunctionToolset()

    @toolset.tool_plain
    def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
        """Refund an order."""
        return ran.refund(order_id, amount)

    @toolset.tool_plain
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order."""
        return ran.lookup(order_id)

    return toolset


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")
    yield g
    await g.aclose()


def agent(
    gate: Gate, ran: Ran, *calls: ToolCallPart, wait: bool = True, timeout: float = 300
) -> Agent[None, Any]:
    toolset = SignoffToolset(
        shop_toolset(ran), gate=gate, run=RUN, policies=policies(timeout), wait=wait
    )
    output: Any = [str, DeferredToolRequests] if not wait else str
    return Agent(scripted(*calls), toolsets=[toolset], output_type=output)


async def test_approved_call_runs_once(gate: Gate) -> None:
    ran = Ran()
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent(gate, ran, refund_call()).run("Refund ORD-1")
    assert ran.calls == [("issue_refund", REFUND)]
    assert json.loads(result.output) == {
        "tc-1": ["success", '{"refund_id":"rf_ord-1","amount":250.0}']
    }
    assert await gate.pending() == []


async def test_edit_runs_with_the_approved_arguments_once_and_says_so(gate: Gate) -> None:
    ran = Ran()
    edit = Approve(modified_args={"amount": 99})
    async with ScriptedApprover(gate, lambda request: edit, by=PUBLISHER):
        result = await agent(gate, ran, refund_call()).run("Refund ORD-1")
    assert ran.calls == [("issue_refund", {"order_id": "ORD-1", "amount": 99.0})]
    [[outcome, content]] = json.loads(result.output).values()
    assert outcome == "success"
    assert json.loads(content) == json.loads(
        edited({"refund_id": "rf_ord-1", "amount": 99.0}, "amount", 250.0, 99)
    )


async def test_reject_tells_the_model_the_reason(gate: Gate) -> None:
    ran = Ran()
    reject = Reject("Too much for a scratch")
    async with ScriptedApprover(gate, lambda request: reject, by=PUBLISHER):
        result = await agent(gate, ran, refund_call()).run("Refund ORD-1")
    [[outcome, content]] = json.loads(result.output).values()
    assert outcome == "failed"
    assert json.loads(content) == rejected(REFUND, "Too much for a scratch")
    assert ran.calls == []


async def test_timeout_tells_the_model(gate: Gate) -> None:
    ran = Ran()
    result = await agent(gate, ran, refund_call(), timeout=0.2).run("Refund ORD-1")
    [[outcome, content]] = json.loads(result.output).values()
    assert (outcome, json.loads(content)) == ("failed", timed_out(REFUND, "0.2 seconds"))
    assert ran.calls == []


async def test_a_call_the_policy_lets_through_runs_without_a_request(gate: Gate) -> None:
    ran = Ran()
    lookup = ToolCallPart("lookup_order", {"order_id": "ORD-1"}, "tc-9")
    await agent(gate, ran, lookup).run("Where is ORD-1?")
    assert ran.calls == [("lookup_order", {"order_id": "ORD-1"})]


async def test_two_parallel_calls_decided_differently(gate: Gate) -> None:
    ran = Ran()
    small, large = refund_call("tc-a", 40.0), refund_call("tc-b", 900.0)

    def script(request: Any) -> Approve | Reject:
        return Approve() if request.args["amount"] < 100 else Reject("Over the limit")

    async with ScriptedApprover(gate, script, by=PUBLISHER):
        result = await agent(gate, ran, small, large).run("Refund both")
    answers = json.loads(result.output)
    assert answers["tc-a"] == ["success", '{"refund_id":"rf_ord-1","amount":40.0}']
    assert answers["tc-b"][0] == "failed"
    assert json.loads(answers["tc-b"][1]) == rejected(
        {"order_id": "ORD-1", "amount": 900.0}, "Over the limit"
    )
    assert ran.calls == [("issue_refund", {"order_id": "ORD-1", "amount": 40.0})]


async def test_deferred_calls_end_the_run_and_signoff_decisions_resume_it(gate: Gate) -> None:
    ran = Ran()
    small, large = refund_call("tc-a", 40.0), refund_call("tc-b", 900.0)
    paused = await agent(gate, ran, small, large, wait=False).run("Refund both")
    requests = paused.output
    assert isinstance(requests, DeferredToolRequests)
    assert [call.tool_call_id for call in requests.approvals] == ["tc-a", "tc-b"]
    view = requests.metadata["tc-a"][METADATA_KEY]
    assert view["reason"] == "Refund 40.0 for ORD-1" and view["editable"] == ["amount"]
    # nobody decided yet: nothing to hand back
    assert (await deferred_tool_results(gate, requests, run=RUN)).approvals == {}
    pending = {r.tool_call_id: r.id for r in await gate.pending()}
    await gate.approve(pending["tc-a"], by=PUBLISHER, modified_args={"amount": 30})
    await gate.reject(pending["tc-b"], by=PUBLISHER, reason="Over the limit")

    results = await deferred_tool_results(gate, requests, run=RUN)
    assert requests.remaining(results) is None
    history = paused.all_messages()
    resumed = await agent(gate, ran, wait=False).run(
        message_history=history, deferred_tool_results=results
    )
    answers = json.loads(resumed.output)
    assert json.loads(answers["tc-a"][1])["result"] == {"refund_id": "rf_ord-1", "amount": 30.0}
    assert answers["tc-b"][0] == "denied"
    assert json.loads(answers["tc-b"][1]) == rejected(
        {"order_id": "ORD-1", "amount": 900.0}, "Over the limit"
    )
    assert ran.calls == [("issue_refund", {"order_id": "ORD-1", "amount": 30.0})]

    # the same resume again (a retried job): the approval is spent, the tool does not rerun
    again = await agent(gate, ran, wait=False).run(
        message_history=history, deferred_tool_results=results
    )
    assert json.loads(json.loads(again.output)["tc-a"][1])["result"]["amount"] == 30.0
    assert len(ran.calls) == 1


async def test_an_approval_signoff_did_not_give_runs_nothing(gate: Gate) -> None:
    ran = Ran()
    paused = await agent(gate, ran, refund_call(), wait=False).run("Refund ORD-1")
    assert isinstance(paused.output, DeferredToolRequests)
    history = paused.all_messages()
    forged = DeferredToolResults(approvals={"tc-1": True})
    again = await agent(gate, ran, wait=False).run(
        message_history=history, deferred_tool_results=forged
    )
    # still waiting for a real decision: deferred again, the same request, nothing ran
    assert isinstance(again.output, DeferredToolRequests)
    [request] = await gate.pending()
    assert again.output.metadata["tc-1"][METADATA_KEY]["request_id"] == request.id
    # forged arguments are not the call that was asked about: refused, nothing ran
    bigger = ToolApproved(override_args={"order_id": "ORD-1", "amount": 1e6})
    refused = await agent(gate, ran, wait=False).run(
        message_history=history,
        deferred_tool_results=DeferredToolResults(approvals={"tc-1": bigger}),
    )
    [[outcome, content]] = json.loads(refused.output).values()
    assert outcome == "failed" and json.loads(content)["error"] == "approval_unavailable"
    assert [r.id for r in await gate.pending()] == [request.id] and ran.calls == []


async def test_a_run_resumed_from_its_messages_finds_its_request(gate: Gate) -> None:
    """The in-process half of the crash test: the run stops while its call waits; the run
    resumed from its checkpointed messages finds the same request and runs the tool once."""
    ran = Ran()
    first = agent(gate, ran, refund_call())
    checkpoint: list[ModelMessage] = []

    async def run_and_checkpoint() -> None:
        async with first.iter("Refund ORD-1") as run:
            async for _node in run:
                checkpoint[:] = run.all_messages()

    task = asyncio.create_task(run_and_checkpoint())
    await wait_for_pending(gate, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [request] = await gate.pending()
    await gate.approve(request.id, by=PUBLISHER)
    resumed = await agent(gate, ran).run(message_history=checkpoint)
    assert json.loads(resumed.output)["tc-1"][0] == "success"
    assert ran.calls == [("issue_refund", REFUND)]
    assert await gate.pending() == []


def test_import_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic_ai", None)
    monkeypatch.delitem(sys.modules, "signoff.integrations.pydantic_ai")
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module("signoff.integrations.pydantic_ai")
    assert caught.value.detail == {"package": "pydantic-ai", "extra": "pydantic-ai"}


async def test_a_deferred_call_whose_request_expires_is_denied_with_the_timeout(
    gate: Gate,
) -> None:
    ran = Ran()
    paused = await agent(gate, ran, refund_call(), wait=False, timeout=0.2).run("Refund ORD-1")
    requests = paused.output
    assert isinstance(requests, DeferredToolRequests)
    await asyncio.sleep(0.3)  # nobody decides in time
    results = await deferred_tool_results(gate, requests, run=RUN)
    resumed = await agent(gate, ran, wait=False).run(
        message_history=paused.all_messages(), deferred_tool_results=results
    )
    [[outcome, content]] = json.loads(resumed.output).values()
    assert (outcome, json.loads(content)) == ("denied", timed_out(REFUND, "0.2 seconds"))
    assert ran.calls == []
