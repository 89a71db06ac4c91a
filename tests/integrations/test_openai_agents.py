"""OpenAI Agents SDK: the real ``agents`` Runner against the local server that speaks the
Responses API (fake_providers), its function tools gated, its interruptions decided in
signoff and applied to the RunState."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    RunResult,
    Tool,
    function_tool,
    set_tracing_disabled,
)

from signoff import Gate, MissingDependency, Run, Status
from signoff.integrations.openai_agents import PausedRun, gated_tool, pause
from signoff.testing import Approve, Reject, ScriptedApprover

from .fake_providers import PUBLISHER, FakeModel, ToolUse, say, use
from .frameworks import Ran, edited, policies, rejected, timed_out

RUN = Run(agent_id="support", run_id="conv-1")
REFUND = {"order_id": "ORD-1", "amount": 250.0}
CONFIG = RunConfig(tracing_disabled=True)


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    set_tracing_disabled(True)  # the SDK would export traces to OpenAI otherwise


@pytest.fixture
async def client(model: FakeModel) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key="test", base_url=f"{model.url}/v1", max_retries=0, timeout=10
    ) as c:
        yield c


def shop_agent(gate: Gate, ran: Ran, client: openai.AsyncOpenAI, timeout: float = 300) -> Agent:
    @function_tool
    def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
        """Refund an order."""
        return ran.refund(order_id, amount)

    @function_tool
    def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order."""
        return ran.lookup(order_id)

    rules = policies(timeout)
    tools: list[Tool] = [
        gated_tool(gate, issue_refund, run=RUN, policy=rules["issue_refund"]),
        gated_tool(gate, lookup_order, run=RUN, policy=rules["lookup_order"]),
    ]
    model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
    return Agent(name="support", instructions="Help.", model=model, tools=tools)


def outputs(body: dict[str, Any]) -> dict[str, str]:
    """call_id → the tool output the model was sent."""
    return {
        item["call_id"]: item["output"]
        for item in body["input"]
        if item.get("type") == "function_call_output"
    }


async def run_paused(
    gate: Gate, agent: Agent, prompt: str = "Refund ORD-1"
) -> tuple[RunResult, PausedRun]:
    result = await Runner.run(agent, prompt, run_config=CONFIG)
    paused = await pause(gate, result, run=RUN)
    assert paused is not None
    return result, paused


async def finish(gate: Gate, agent: Agent, paused: PausedRun) -> RunResult:
    await paused.wait(gate, timeout=10)
    return await Runner.run(agent, await paused.apply(gate), run_config=CONFIG)


async def test_approve_runs_once(gate: Gate, model: FakeModel, client: openai.AsyncOpenAI) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client)
    model.play(use(ToolUse("issue_refund", REFUND)), say("Refunded."))
    _, paused = await run_paused(gate, agent)
    assert ran.calls == []  # paused: nothing ran
    [request] = await gate.pending()
    assert paused.requests == {"call_1_0": request.id}
    assert request.reason == "Refund 250.0 for ORD-1" and request.run.run_id == "conv-1"
    await gate.approve(request.id, by=PUBLISHER)
    final = await finish(gate, agent, paused)
    assert final.final_output == "Refunded."
    assert ran.calls == [("issue_refund", REFUND)]
    # the SDK's own way with a dict result: str() of it
    assert outputs(model.bodies[-1])["call_1_0"] == str({"refund_id": "rf_ord-1", "amount": 250.0})


async def test_edit_runs_with_the_approved_arguments_once(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client)
    model.play(use(ToolUse("issue_refund", REFUND)), say("Refunded 99."))
    _, paused = await run_paused(gate, agent)
    [request] = await gate.pending()
    await gate.approve(request.id, by=PUBLISHER, modified_args={"amount": 99})
    await finish(gate, agent, paused)
    assert ran.calls == [("issue_refund", {"order_id": "ORD-1", "amount": 99.0})]
    told = json.loads(outputs(model.bodies[-1])["call_1_0"])
    assert told == json.loads(
        edited({"refund_id": "rf_ord-1", "amount": 99.0}, "amount", 250.0, 99)
    )


async def test_reject_tells_the_model_the_reason(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client)
    model.play(use(ToolUse("issue_refund", REFUND)), say("Refused."))
    _, paused = await run_paused(gate, agent)
    [request] = await gate.pending()
    await gate.reject(request.id, by=PUBLISHER, reason="Too much for a scratch")
    await finish(gate, agent, paused)
    told = json.loads(outputs(model.bodies[-1])["call_1_0"])
    assert told == rejected(REFUND, "Too much for a scratch") and ran.calls == []


async def test_timeout_tells_the_model(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client, timeout=0.2)
    model.play(use(ToolUse("issue_refund", REFUND)), say("Nobody answered."))
    _, paused = await run_paused(gate, agent)
    assert await paused.wait(gate, timeout=5)  # the deadline passes: expired
    await finish(gate, agent, paused)
    told = json.loads(outputs(model.bodies[-1])["call_1_0"])
    assert told == timed_out(REFUND, "0.2 seconds") and ran.calls == []


async def test_a_call_the_policy_lets_through_is_not_paused(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    model.play(use(ToolUse("lookup_order", {"order_id": "ORD-1"})), say("Delivered."))
    result = await Runner.run(shop_agent(gate, ran, client), "Where?", run_config=CONFIG)
    assert result.interruptions == [] and result.final_output == "Delivered."
    assert ran.calls == [("lookup_order", {"order_id": "ORD-1"})]
    assert await pause(gate, result, run=RUN) is None


async def test_two_parallel_calls_decided_differently(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client)
    small = {"order_id": "ORD-1", "amount": 40.0}
    large = {"order_id": "ORD-1", "amount": 900.0}
    model.play(use(ToolUse("issue_refund", small), ToolUse("issue_refund", large)), say("Done."))
    _, paused = await run_paused(gate, agent)
    assert set(paused.requests) == {"call_1_0", "call_1_1"}

    def script(request: Any) -> Approve | Reject:
        return Approve() if request.args["amount"] < 100 else Reject("Over the limit")

    async with ScriptedApprover(gate, script, by=PUBLISHER):
        await finish(gate, agent, paused)
    told = outputs(model.bodies[-1])
    assert told["call_1_0"] == str({"refund_id": "rf_ord-1", "amount": 40.0})
    assert json.loads(told["call_1_1"]) == rejected(large, "Over the limit")
    assert ran.calls == [("issue_refund", small)]


async def test_an_sdk_approval_that_signoff_did_not_give_runs_nothing(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client)
    model.play(use(ToolUse("issue_refund", REFUND)), say("Hm."))
    result, _ = await run_paused(gate, agent)
    state = result.to_state()
    [item] = state.get_interruptions()
    state.approve(item)  # whoever holds the state approves it: not signoff's decision
    await Runner.run(agent, state, run_config=CONFIG)
    told = json.loads(outputs(model.bodies[-1])["call_1_0"])
    assert told["error"] == "approval_pending" and ran.calls == []
    [request] = await gate.pending()
    assert request.status is Status.PENDING


async def test_a_paused_run_is_stored_and_finished_from_json(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    model.play(use(ToolUse("issue_refund", REFUND)), say("Refunded."))
    _, paused = await run_paused(gate, shop_agent(gate, ran, client))
    stored = json.dumps(paused.to_json())
    # pausing the same result again finds the same request
    [request] = await gate.pending()
    await gate.approve(request.id, by=PUBLISHER)
    other_agent = shop_agent(gate, ran, client)
    loaded = await PausedRun.from_json(other_agent, json.loads(stored))
    assert loaded.requests == paused.requests and loaded.run == RUN
    final = await finish(gate, other_agent, loaded)
    assert final.final_output == "Refunded." and ran.calls == [("issue_refund", REFUND)]


def test_import_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "agents", None)
    monkeypatch.delitem(sys.modules, "signoff.integrations.openai_agents")
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module("signoff.integrations.openai_agents")
    assert caught.value.detail == {"package": "openai-agents", "extra": "openai-agents"}


async def test_arguments_that_do_not_fit_are_refused_without_asking(
    gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    ran = Ran()
    agent = shop_agent(gate, ran, client)
    model.play(use(ToolUse("issue_refund", {"order_id": "ORD-1"})), say("Oops."))
    _, paused = await run_paused(gate, agent)  # the SDK asks: invalid arguments fail closed
    assert paused.requests == {} and await gate.pending() == []
    await finish(gate, agent, paused)
    told = json.loads(outputs(model.bodies[-1])["call_1_0"])
    assert told["error"] == "invalid_tool_call" and "amount" in told["message"]
    assert ran.calls == []
