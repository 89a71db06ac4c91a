"""The Messages API loop, driven through the real ``anthropic`` SDK against a local fake."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from signoff import (
    CallStatus,
    ConfigError,
    Gate,
    MissingDependency,
    Outcome,
    Policy,
    Run,
    ToolCall,
    UsageError,
    cancel,
)
from signoff.integrations._loop import Transcript, run_tool_loop
from signoff.integrations.anthropic import (
    AgentResult,
    MessagesProvider,
    run_agent,
    tool_definitions,
)
from signoff.testing import Approve, Reject, ScriptedApprover

from .fake_providers import (
    PUBLISHER,
    REFUND_REJECTED,
    FakeModel,
    Shop,
    ToolUse,
    say,
    tool_use_id,
    use,
    wait_for_pending,
)

MODEL = "claude-test"
RUN = Run(agent_id="support", run_id="run-1")
PROMPT: list[dict[str, Any]] = [{"role": "user", "content": "Refund order ORD-1, please."}]
REFUND = ToolUse("issue_refund", {"order_id": "ORD-1", "amount": 250})


@pytest.fixture
async def client(model: FakeModel) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        api_key="test", base_url=model.url, max_retries=0, timeout=10
    ) as c:
        yield c


async def agent(
    client: anthropic.AsyncAnthropic | anthropic.Anthropic,
    gate: Gate,
    shop: Shop,
    **kwargs: Any,
) -> AgentResult:
    kwargs.setdefault("messages", PROMPT)
    kwargs.setdefault("tools", shop.tools)
    async with asyncio.timeout(20):
        return await run_agent(client, gate, model=MODEL, run=RUN, **kwargs)


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result turn the model got last (the request's final user message)."""
    last = body["messages"][-1]
    assert last["role"] == "user"
    assert all(block["type"] == "tool_result" for block in last["content"])
    return list(last["content"])


def refund_args(amount: float = 250.0) -> dict[str, Any]:
    return {"order_id": "ORD-1", "amount": amount}


# -- tool definitions --------------------------------------------------------------------


def test_tool_definitions(shop: Shop) -> None:
    definitions = tool_definitions(shop.tools)
    assert definitions == [
        {
            "name": "issue_refund",
            "description": "Refund an order.",
            "input_schema": shop.issue_refund.json_schema,
        },
        {
            "name": "lookup_order",
            "description": "Look up an order.",
            "input_schema": shop.lookup_order.json_schema,
        },
    ]


# -- what the model is told --------------------------------------------------------------


async def test_approved_call_runs_and_the_model_gets_its_result(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    model.play(use(REFUND, text="Refunding."), say("Refunded ORD-1."))
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent(client, gate, shop, system="Be brief.", stop_sequences=["###"])

    first, second = model.bodies
    assert first["model"] == MODEL and first["max_tokens"] == 4096
    assert first["system"] == "Be brief." and first["stop_sequences"] == ["###"]
    assert first["messages"] == PROMPT
    assert first["tools"] == json.loads(json.dumps(tool_definitions(shop.tools)))
    assert second["messages"][:2] == [
        PROMPT[0],
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Refunding.", "citations": None},
                {
                    "type": "tool_use",
                    "id": "toolu_1_0",
                    "name": "issue_refund",
                    "input": {"order_id": "ORD-1", "amount": 250},
                },
            ],
        },
    ]
    assert tool_results(second) == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1_0",
            "content": '{"refund_id": "rf_ord-1", "amount": 250.0}',
            "is_error": False,
        }
    ]
    assert shop.ran == [("issue_refund", refund_args())]

    assert result.final_text == "Refunded ORD-1."
    assert result.turns == 2 and result.finished
    final_turn = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Refunded ORD-1.", "citations": None}],
    }
    assert result.messages == [*second["messages"], final_turn]
    assert json.loads(json.dumps(result.messages)) == result.messages  # storable as it is
    [outcome] = result.outcomes
    assert outcome.status is CallStatus.EXECUTED
    assert outcome.request is not None
    assert outcome.request.tool_call_id == "toolu_1_0" and outcome.request.run == RUN


async def test_edited_call_runs_with_the_approved_values_and_says_so(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    model.play(use(REFUND), say("Refunded 100."))
    edit = Approve(modified_args={"amount": 100})
    async with ScriptedApprover(gate, lambda request: edit, by=PUBLISHER):
        await agent(client, gate, shop)
    assert shop.ran == [("issue_refund", refund_args(100.0))]
    told = {
        "result": {"refund_id": "rf_ord-1", "amount": 100.0},
        "approval": {
            "modified_by_approver": {"amount": {"proposed": 250.0, "approved": 100}},
            "note": (
                "An approver changed amount before the call ran; it ran with the approved "
                "values, not the ones you proposed."
            ),
        },
    }
    assert tool_results(model.bodies[1]) == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1_0",
            "content": json.dumps(told),
            "is_error": False,
        }
    ]


async def test_rejected_call_is_an_error_result_with_the_reason(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    model.play(use(REFUND), say("The refund was refused."))
    reject = Reject("Amount exceeds the limit")
    async with ScriptedApprover(gate, lambda request: reject, by=PUBLISHER):
        result = await agent(client, gate, shop)
    told = {
        "error": "approval_rejected",
        "message": f"{REFUND_REJECTED} Reason: Amount exceeds the limit",
        "tool": "issue_refund",
        "parameters": refund_args(),
    }
    assert tool_results(model.bodies[1]) == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1_0",
            "content": json.dumps(told),
            "is_error": True,
        }
    ]
    assert shop.ran == []
    assert result.final_text == "The refund was refused."


async def test_timeout_is_an_error_result(
    gate: Gate, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    shop = Shop(gate, refund_timeout=0.2)
    model.play(use(REFUND), say("Nobody answered."))
    await agent(client, gate, shop)  # nobody decides
    told = {
        "error": "approval_timeout",
        "message": "Approval request timed out after 0.2 seconds",
        "tool": "issue_refund",
        "parameters": refund_args(),
    }
    [result] = tool_results(model.bodies[1])
    assert result["content"] == json.dumps(told) and result["is_error"] is True
    assert shop.ran == []


async def test_cancelled_call_is_an_error_result(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    @gate.hook
    def weekends(call: ToolCall) -> Any:
        if call.tool_name == "issue_refund":
            return cancel("Refunds are closed at weekends.")
        return None

    model.play(use(REFUND), say("Closed."))
    await agent(client, gate, shop)
    told = {
        "error": "approval_cancelled",
        "message": "Refunds are closed at weekends.",
        "tool": "issue_refund",
        "parameters": refund_args(),
    }
    [result] = tool_results(model.bodies[1])
    assert result["content"] == json.dumps(told) and result["is_error"] is True
    assert shop.ran == []


async def test_a_tool_that_needs_no_approval_just_runs(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    model.play(use(ToolUse("lookup_order", {"order_id": "ORD-1"})), say("Delivered."))
    result = await agent(client, gate, shop)  # no approver: nobody is asked
    assert tool_results(model.bodies[1]) == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1_0",
            "content": '{"order_id": "ORD-1", "status": "delivered", "total": 250.0}',
            "is_error": False,
        }
    ]
    assert result.outcomes[0].request is None and await gate.pending() == []
    assert shop.ran == [("lookup_order", {"order_id": "ORD-1"})]


async def test_parallel_calls_wait_together_and_are_answered_in_one_turn_in_order(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    second_refund = ToolUse("issue_refund", {"order_id": "ORD-2", "amount": 300})
    model.play(use(REFUND, second_refund), say("One of two."))
    run = asyncio.create_task(agent(client, gate, shop))
    # both requests wait at once: the second was not held back behind the first
    await wait_for_pending(gate, 2)
    by_order = {request.args["order_id"]: request for request in await gate.pending()}
    assert {r.tool_call_id for r in by_order.values()} == {tool_use_id(1, 0), tool_use_id(1, 1)}
    # decided in the reverse order, answered in the model's order
    await gate.approve(by_order["ORD-2"].id, by=PUBLISHER)
    await gate.reject(by_order["ORD-1"].id, by=PUBLISHER, reason="Too much")
    result = await run

    second = model.bodies[1]
    assert second["messages"][-1]["role"] == "user"
    assert second["messages"][-2]["role"] == "assistant"
    first_result, second_result = tool_results(second)
    assert first_result["tool_use_id"] == "toolu_1_0" and first_result["is_error"] is True
    assert json.loads(first_result["content"])["error"] == "approval_rejected"
    assert second_result == {
        "type": "tool_result",
        "tool_use_id": "toolu_1_1",
        "content": '{"refund_id": "rf_ord-2", "amount": 300.0}',
        "is_error": False,
    }
    assert [o.tool_call_id for o in result.outcomes] == ["toolu_1_0", "toolu_1_1"]
    assert shop.ran == [("issue_refund", {"order_id": "ORD-2", "amount": 300.0})]


async def test_bad_arguments_and_unknown_tools_are_error_results_and_the_run_goes_on(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    @gate.tool(policy=Policy(when=False))
    def drop_database() -> str:
        """Known to the gate, but not offered to this model."""
        shop.ran.append(("drop_database", {}))
        return "dropped"

    model.play(
        use(
            ToolUse("issue_refund", {"order_id": "ORD-1", "amount": -5}),
            ToolUse("issue_refund", {"order_id": "ORD-1"}),
            ToolUse("drop_database"),
            ToolUse("send_email", {"to": "x@example.com"}),
        ),
        use(REFUND),
        say("Done."),
    )
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent(client, gate, shop)

    negative, missing, not_offered, unknown = tool_results(model.bodies[1])
    assert all(block["is_error"] for block in (negative, missing, not_offered, unknown))
    negative_told = json.loads(negative["content"])
    assert negative_told["error"] == "invalid_tool_call"
    assert negative_told["parameters"] == {"order_id": "ORD-1", "amount": -5}
    assert "amount" in negative_told["message"]
    missing_told = json.loads(missing["content"])
    assert missing_told["error"] == "invalid_tool_call" and "amount" in missing_told["message"]
    assert not_offered["content"] == json.dumps(
        {
            "error": "invalid_tool_call",
            "message": "unknown tool 'drop_database'; the tools are: issue_refund, lookup_order",
            "tool": "drop_database",
            "parameters": {},
        }
    )
    assert json.loads(unknown["content"]) == {
        "error": "invalid_tool_call",
        "message": "unknown tool 'send_email'; the tools are: issue_refund, lookup_order",
        "tool": "send_email",
        "parameters": {"to": "x@example.com"},
    }
    # the run went on: the model tried again, and that call ran
    assert result.turns == 3 and result.final_text == "Done."
    assert shop.ran == [("issue_refund", refund_args())]


async def test_max_turns_stops_the_run_and_a_second_run_answers_the_last_calls(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    lookup = ToolUse("lookup_order", {"order_id": "ORD-1"})
    model.play(use(lookup), use(lookup), say("Delivered."))
    result = await agent(client, gate, shop, max_turns=2)
    assert result.turns == 2 and len(model.requests) == 2 and not result.finished
    # the last turn's call was not run: nobody would have read its result
    assert len(result.outcomes) == 1 and len(shop.ran) == 1
    last = result.messages[-1]
    assert last["role"] == "assistant" and last["content"][0]["id"] == "toolu_2_0"

    again = await agent(client, gate, shop, messages=result.messages)
    assert tool_results(model.bodies[2])[0]["tool_use_id"] == "toolu_2_0"
    assert again.turns == 1 and len(shop.ran) == 2 and again.final_text == "Delivered."
    assert model.refusals == []


async def test_sync_client_runs_in_a_worker_thread(
    gate: Gate, shop: Shop, model: FakeModel
) -> None:
    # the fake server lives on this event loop: a sync client called on it would hang
    model.play(use(REFUND), say("Refunded."))
    with anthropic.Anthropic(api_key="test", base_url=model.url, max_retries=0, timeout=10) as sync:
        async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
            result = await agent(sync, gate, shop)
    assert result.final_text == "Refunded."
    assert tool_results(model.bodies[1])[0]["content"] == (
        '{"refund_id": "rf_ord-1", "amount": 250.0}'
    )


# -- when the run stops early ------------------------------------------------------------


async def test_a_call_that_breaks_stops_the_others_and_the_run(
    gate: Gate,
    shop: Shop,
    model: FakeModel,
    client: anthropic.AsyncAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_call = gate.call

    async def call(name: str, args: Any = None, **kwargs: Any) -> Outcome:
        if name == "lookup_order":
            await wait_for_pending(gate, 1)  # while the refund waits for a human
            raise RuntimeError("store on fire")
        return await real_call(name, args, **kwargs)

    monkeypatch.setattr(gate, "call", call)
    model.play(use(REFUND, ToolUse("lookup_order", {"order_id": "ORD-1"})), say("never"))
    with pytest.raises(RuntimeError, match="store on fire"):
        await agent(client, gate, shop)
    await assert_nothing_runs_after_approval(gate, shop)
    assert len(model.requests) == 1


async def test_cancelling_the_run_stops_its_waiting_calls(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    model.play(use(REFUND), say("never"))
    run = asyncio.create_task(agent(client, gate, shop))
    await wait_for_pending(gate, 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await assert_nothing_runs_after_approval(gate, shop)


async def assert_nothing_runs_after_approval(gate: Gate, shop: Shop) -> None:
    """The waiting call went with its run: approving it now runs nothing."""
    [pending] = await gate.pending()
    await gate.approve(pending.id, by=PUBLISHER)
    await asyncio.sleep(0.1)  # time for a left-behind call to wake up and run
    assert shop.ran == []


# -- durable runs: checkpoints and resuming ------------------------------------------------


async def test_each_step_is_reported_and_a_resumed_run_does_not_ask_twice(
    gate: Gate, shop: Shop, model: FakeModel, client: anthropic.AsyncAnthropic
) -> None:
    checkpoints: list[Transcript] = []

    async def checkpoint(transcript: Transcript) -> None:
        checkpoints.append(json.loads(json.dumps(transcript)))

    model.play(use(REFUND), say("Refunded."))
    provider = MessagesProvider(client, model=MODEL, tools=shop.tools, create_kwargs={})
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER) as approver:
        first = await run_tool_loop(
            provider, gate, shop.tools, list(PROMPT), run=RUN, on_step=checkpoint
        )
        # after the assistant turn, after the tool results, after the final turn
        assert [len(c) for c in checkpoints] == [2, 3, 4]
        assert checkpoints[-1] == first.messages
        assert checkpoints[0][-1]["content"][0]["type"] == "tool_use"
        assert checkpoints[1][-1]["content"][0]["type"] == "tool_result"

        # a new process resumes from the first checkpoint: the call is gated again under
        # the same run and tool_use id, finds its approved request, and does not run again
        model.play(say("Refunded, still."))
        resumed = await run_agent(
            client, gate, model=MODEL, messages=checkpoints[0], tools=shop.tools, run=RUN
        )
    assert len(approver.decided) == 1 and len(shop.ran) == 1
    assert [o.request.id for o in resumed.outcomes if o.request] == [
        o.request.id for o in first.outcomes if o.request
    ]
    assert tool_results(model.bodies[2]) == tool_results(model.bodies[1])
    assert len(model.requests) == 3  # the resumed run called the model once, after the results


# -- misuse --------------------------------------------------------------------------------


async def test_tools_must_be_gated_by_the_same_gate(
    gate: Gate, client: anthropic.AsyncAnthropic
) -> None:
    other = Gate("memory://")
    elsewhere = Shop(other)
    with pytest.raises(ConfigError, match="not a tool of this gate"):
        await run_agent(client, gate, model=MODEL, messages=PROMPT, tools=elsewhere.tools)
    await other.aclose()
    with pytest.raises(UsageError, match="does not stream"):
        await run_agent(client, gate, model=MODEL, messages=PROMPT, tools=[], stream=True)
    with pytest.raises(UsageError, match="max_turns"):
        await run_agent(client, gate, model=MODEL, messages=PROMPT, tools=[], max_turns=0)


def test_import_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # what an absent package looks like
    monkeypatch.delitem(sys.modules, "signoff.integrations.anthropic")
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module("signoff.integrations.anthropic")
    assert caught.value.detail == {"package": "anthropic", "extra": "anthropic"}
    assert "pip install 'signoff[anthropic]'" in str(caught.value)
