"""The Responses and Chat Completions loops, through the real ``openai`` SDK against a fake.

Most tests run on both APIs (``api``): the same scripted model, the same gate, and the
tool results read back from what each API was sent.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, Literal, cast

import openai
import pytest

from signoff import CallStatus, Gate, MissingDependency, Policy, Run, ToolCall, cancel
from signoff.integrations.openai import (
    AgentResult,
    chat_tool_definitions,
    run_agent,
    run_chat_agent,
    tool_definitions,
)
from signoff.testing import Approve, Reject, ScriptedApprover

from .fake_providers import (
    PUBLISHER,
    REFUND_REJECTED,
    FakeModel,
    Shop,
    ToolUse,
    call_id,
    say,
    use,
    wait_for_pending,
)

Api = Literal["responses", "chat"]

MODEL = "gpt-test"
RUN = Run(agent_id="support", run_id="run-1")
PROMPT = "Refund order ORD-1, please."
REFUND = ToolUse("issue_refund", {"order_id": "ORD-1", "amount": 250})
REFUNDED = '{"refund_id": "rf_ord-1", "amount": 250.0}'


@pytest.fixture(params=["responses", "chat"])
def api(request: pytest.FixtureRequest) -> Api:
    return cast("Api", request.param)


@pytest.fixture
async def client(model: FakeModel) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key="test", base_url=f"{model.url}/v1", max_retries=0, timeout=10
    ) as c:
        yield c


async def agent(
    api: Api,
    client: openai.AsyncOpenAI | openai.OpenAI,
    gate: Gate,
    shop: Shop,
    *,
    history: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> AgentResult:
    """Run the loop of ``api`` on ``PROMPT`` (or on ``history``, to resume)."""
    kwargs.setdefault("tools", shop.tools)
    async with asyncio.timeout(20):
        if api == "responses":
            given: Any = history if history is not None else PROMPT
            return await run_agent(client, gate, model=MODEL, input=given, run=RUN, **kwargs)
        messages = history if history is not None else [{"role": "user", "content": PROMPT}]
        return await run_chat_agent(client, gate, model=MODEL, messages=messages, run=RUN, **kwargs)


def results_sent(api: Api, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(call id, text) of the tool results the model was sent, in order."""
    if api == "responses":
        items = body["input"]
        return [
            (i["call_id"], i["output"]) for i in items if i.get("type") == "function_call_output"
        ]
    return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]


def refund_args(amount: float = 250.0) -> dict[str, Any]:
    return {"order_id": "ORD-1", "amount": amount}


# -- tool definitions --------------------------------------------------------------------


def test_tool_definitions(shop: Shop) -> None:
    assert tool_definitions(shop.tools) == [
        {
            "type": "function",
            "name": "issue_refund",
            "description": "Refund an order.",
            "parameters": shop.issue_refund.json_schema,
            "strict": False,
        },
        {
            "type": "function",
            "name": "lookup_order",
            "description": "Look up an order.",
            "parameters": shop.lookup_order.json_schema,
            "strict": False,
        },
    ]
    assert chat_tool_definitions(shop.tools) == [
        {
            "type": "function",
            "function": {
                "name": "issue_refund",
                "description": "Refund an order.",
                "parameters": shop.issue_refund.json_schema,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Look up an order.",
                "parameters": shop.lookup_order.json_schema,
            },
        },
    ]


# -- the transcript, exactly ---------------------------------------------------------------


async def test_responses_transcript_is_the_input_list(
    gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    model.play(use(REFUND, text="Refunding."), say("Refunded ORD-1."))
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent("responses", client, gate, shop, instructions="Be brief.")

    first, second = model.bodies
    assert first["model"] == MODEL and first["instructions"] == "Be brief."
    assert first["input"] == [{"role": "user", "content": PROMPT}]
    assert first["tools"] == json.loads(json.dumps(tool_definitions(shop.tools)))
    message = {
        "type": "message",
        "id": "msg_0001",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Refunding.", "annotations": []}],
    }
    function_call = {
        "type": "function_call",
        "id": "fc_1_0",
        "call_id": "call_1_0",
        "name": "issue_refund",
        "arguments": '{"order_id": "ORD-1", "amount": 250}',
        "status": "completed",
    }
    output = {"type": "function_call_output", "call_id": "call_1_0", "output": REFUNDED}
    assert second["input"] == [{"role": "user", "content": PROMPT}, message, function_call, output]
    final = {
        "type": "message",
        "id": "msg_0002",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Refunded ORD-1.", "annotations": []}],
    }
    assert result.messages == [*second["input"], final]
    assert json.loads(json.dumps(result.messages)) == result.messages
    assert result.final_text == "Refunded ORD-1." and result.turns == 2 and result.finished
    [outcome] = result.outcomes
    assert outcome.request is not None
    assert outcome.request.tool_call_id == "call_1_0" and outcome.request.run == RUN


async def test_chat_transcript_is_the_conversation(
    gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    model.play(use(REFUND, text="Refunding."), say("Refunded ORD-1."))
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent("chat", client, gate, shop, temperature=0)

    first, second = model.bodies
    assert first["model"] == MODEL and first["temperature"] == 0
    assert first["messages"] == [{"role": "user", "content": PROMPT}]
    assert first["tools"] == json.loads(json.dumps(chat_tool_definitions(shop.tools)))
    assistant = {
        "role": "assistant",
        "content": "Refunding.",
        "tool_calls": [
            {
                "id": "call_1_0",
                "type": "function",
                "function": {
                    "name": "issue_refund",
                    "arguments": '{"order_id": "ORD-1", "amount": 250}',
                },
            }
        ],
    }
    tool = {"role": "tool", "tool_call_id": "call_1_0", "content": REFUNDED}
    assert second["messages"] == [{"role": "user", "content": PROMPT}, assistant, tool]
    final = {"role": "assistant", "content": "Refunded ORD-1."}
    assert result.messages == [*second["messages"], final]
    assert result.final_text == "Refunded ORD-1." and result.turns == 2 and result.finished
    assert result.outcomes[0].status is CallStatus.EXECUTED


# -- what the model is told, on both APIs ----------------------------------------------------


async def test_approved_call_runs(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    model.play(use(REFUND), say("Refunded."))
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent(api, client, gate, shop)
    assert results_sent(api, model.bodies[1]) == [("call_1_0", REFUNDED)]
    assert shop.ran == [("issue_refund", refund_args())]
    assert result.final_text == "Refunded."


async def test_edited_call_runs_with_the_approved_values_and_says_so(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    model.play(use(REFUND), say("Refunded 100."))
    edit = Approve(modified_args={"amount": 100})
    async with ScriptedApprover(gate, lambda request: edit, by=PUBLISHER):
        await agent(api, client, gate, shop)
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
    assert results_sent(api, model.bodies[1]) == [("call_1_0", json.dumps(told))]


async def test_rejected_call_tells_the_model_why(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    model.play(use(REFUND), say("Refused."))
    reject = Reject("Amount exceeds the limit")
    async with ScriptedApprover(gate, lambda request: reject, by=PUBLISHER):
        result = await agent(api, client, gate, shop)
    told = {
        "error": "approval_rejected",
        "message": f"{REFUND_REJECTED} Reason: Amount exceeds the limit",
        "tool": "issue_refund",
        "parameters": refund_args(),
    }
    assert results_sent(api, model.bodies[1]) == [("call_1_0", json.dumps(told))]
    assert shop.ran == [] and result.outcomes[0].is_error


async def test_timeout_tells_the_model(
    api: Api, gate: Gate, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    shop = Shop(gate, refund_timeout=0.2)
    model.play(use(REFUND), say("Nobody answered."))
    await agent(api, client, gate, shop)  # nobody decides
    told = {
        "error": "approval_timeout",
        "message": "Approval request timed out after 0.2 seconds",
        "tool": "issue_refund",
        "parameters": refund_args(),
    }
    assert results_sent(api, model.bodies[1]) == [("call_1_0", json.dumps(told))]
    assert shop.ran == []


async def test_cancel_tells_the_model(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    @gate.hook
    def weekends(call: ToolCall) -> Any:
        if call.tool_name == "issue_refund":
            return cancel("Refunds are closed at weekends.")
        return None

    model.play(use(REFUND), say("Closed."))
    await agent(api, client, gate, shop)
    told = {
        "error": "approval_cancelled",
        "message": "Refunds are closed at weekends.",
        "tool": "issue_refund",
        "parameters": refund_args(),
    }
    assert results_sent(api, model.bodies[1]) == [("call_1_0", json.dumps(told))]
    assert shop.ran == []


async def test_a_tool_that_needs_no_approval_just_runs(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    model.play(use(ToolUse("lookup_order", {"order_id": "ORD-1"})), say("Delivered."))
    result = await agent(api, client, gate, shop)  # no approver: nobody is asked
    looked_up = '{"order_id": "ORD-1", "status": "delivered", "total": 250.0}'
    assert results_sent(api, model.bodies[1]) == [("call_1_0", looked_up)]
    assert result.outcomes[0].request is None and await gate.pending() == []
    assert shop.ran == [("lookup_order", {"order_id": "ORD-1"})]


async def test_parallel_calls_wait_together_and_are_answered_in_order(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    second_refund = ToolUse("issue_refund", {"order_id": "ORD-2", "amount": 300})
    model.play(use(REFUND, second_refund), say("One of two."))
    run = asyncio.create_task(agent(api, client, gate, shop))
    # both requests wait at once: the second was not held back behind the first
    await wait_for_pending(gate, 2)
    by_order = {request.args["order_id"]: request for request in await gate.pending()}
    assert {r.tool_call_id for r in by_order.values()} == {call_id(1, 0), call_id(1, 1)}
    # decided in the reverse order, answered in the model's order
    await gate.approve(by_order["ORD-2"].id, by=PUBLISHER)
    await gate.reject(by_order["ORD-1"].id, by=PUBLISHER, reason="Too much")
    result = await run

    (first_id, first_text), second = results_sent(api, model.bodies[1])
    assert first_id == "call_1_0" and json.loads(first_text)["error"] == "approval_rejected"
    assert second == ("call_1_1", '{"refund_id": "rf_ord-2", "amount": 300.0}')
    # one results turn, straight after the model's turn that asked
    sent = model.bodies[1]["input" if api == "responses" else "messages"]
    if api == "responses":
        assert [item.get("type") for item in sent[1:]] == [
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
        ]
    else:
        assert [message["role"] for message in sent[1:]] == ["assistant", "tool", "tool"]
    assert [o.tool_call_id for o in result.outcomes] == ["call_1_0", "call_1_1"]
    assert shop.ran == [("issue_refund", {"order_id": "ORD-2", "amount": 300.0})]


async def test_bad_arguments_and_unknown_tools_are_error_results_and_the_run_goes_on(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    @gate.tool(policy=Policy(when=False))
    def drop_database() -> str:
        """Known to the gate, but not offered to this model."""
        shop.ran.append(("drop_database", {}))
        return "dropped"

    model.play(
        use(
            ToolUse("issue_refund", '{"order_id": "ORD-1", "amount": 25'),  # cut-off JSON
            ToolUse("issue_refund", '["ORD-1", 250]'),
            ToolUse("issue_refund", {"order_id": "ORD-1", "amount": "lots"}),
            ToolUse("drop_database"),
            ToolUse("send_email", '{"to": "x@example.com"}'),
        ),
        use(REFUND),
        say("Done."),
    )
    async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
        result = await agent(api, client, gate, shop)

    sent = dict(results_sent(api, model.bodies[1]))
    told = {key: json.loads(text) for key, text in sent.items()}
    assert list(told) == [call_id(1, i) for i in range(5)]
    cut_off, not_an_object, wrong_type, _, unknown = told.values()
    assert cut_off["error"] == "invalid_tool_call" and cut_off["tool"] == "issue_refund"
    assert cut_off["message"].startswith("arguments are not valid JSON")
    assert not_an_object["message"] == "arguments must be a JSON object"
    assert wrong_type["error"] == "invalid_tool_call" and "amount" in wrong_type["message"]
    assert wrong_type["parameters"] == {"order_id": "ORD-1", "amount": "lots"}
    assert sent[call_id(1, 3)] == json.dumps(
        {
            "error": "invalid_tool_call",
            "message": "unknown tool 'drop_database'; the tools are: issue_refund, lookup_order",
            "tool": "drop_database",
            "parameters": {},
        }
    )
    assert unknown == {
        "error": "invalid_tool_call",
        "message": "unknown tool 'send_email'; the tools are: issue_refund, lookup_order",
        "tool": "send_email",
        "parameters": {"to": "x@example.com"},
    }
    assert all(outcome.is_error for outcome in result.outcomes[:5])
    # the run went on: the model tried again, and that call ran
    assert result.turns == 3 and result.final_text == "Done."
    assert shop.ran == [("issue_refund", refund_args())]


async def test_max_turns_stops_the_run_and_a_second_run_answers_the_last_calls(
    api: Api, gate: Gate, shop: Shop, model: FakeModel, client: openai.AsyncOpenAI
) -> None:
    lookup = ToolUse("lookup_order", {"order_id": "ORD-1"})
    model.play(use(lookup), use(lookup), say("Delivered."))
    result = await agent(api, client, gate, shop, max_turns=2)
    assert result.turns == 2 and len(model.requests) == 2 and not result.finished
    # the last turn's call was not run: nobody would have read its result
    assert len(result.outcomes) == 1 and len(shop.ran) == 1

    again = await agent(api, client, gate, shop, history=result.messages)
    assert results_sent(api, model.bodies[2])[-1][0] == call_id(2, 0)
    assert again.turns == 1 and len(shop.ran) == 2 and again.final_text == "Delivered."
    assert model.refusals == []


async def test_sync_client_runs_in_a_worker_thread(
    api: Api, gate: Gate, shop: Shop, model: FakeModel
) -> None:
    # the fake server lives on this event loop: a sync client called on it would hang
    model.play(use(REFUND), say("Refunded."))
    with openai.OpenAI(
        api_key="test", base_url=f"{model.url}/v1", max_retries=0, timeout=10
    ) as sync:
        async with ScriptedApprover(gate, lambda request: Approve(), by=PUBLISHER):
            result = await agent(api, sync, gate, shop)
    assert result.final_text == "Refunded."
    assert results_sent(api, model.bodies[1]) == [("call_1_0", REFUNDED)]


def test_import_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # what an absent package looks like
    monkeypatch.delitem(sys.modules, "signoff.integrations.openai")
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module("signoff.integrations.openai")
    assert caught.value.detail == {"package": "openai", "extra": "openai"}
    assert "pip install 'signoff[openai]'" in str(caught.value)
