"""An agent of one framework in its own process, for the framework crash test.

    python -m tests.helpers.framework_agent FRAMEWORK start|resume

FRAMEWORK is ``langgraph``, ``pydantic-ai`` or ``openai-agents``. The gate is embedded on the
SQLite file $AGENT_DB; the refund tool's side effect is a line appended to $EXEC_LOG; the
framework's own checkpoint lives at $CHECKPOINT (LangGraph's SqliteSaver, Pydantic AI's
messages, the Agents SDK's paused RunState). ``start`` runs the agent until its refund waits
for an approver (the test kills it there); ``resume`` finishes the run from the checkpoint
and prints the agent's last answer. The run id is fixed, so a resumed call finds its request.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from signoff import Gate, Policy, Run

RUN = Run(agent_id="crash-bot", run_id="thread-42")
PROMPT = "Refund ORD-1: it arrived broken."
ANSWER = "The refund is issued."
POLICIES = {"issue_refund": Policy(min_role="publisher", timeout="1h")}


def refund(order_id: str, amount: float) -> str:
    """The tool body: its one side effect is a line in $EXEC_LOG."""
    with open(os.environ["EXEC_LOG"], "a") as log:
        log.write(f"{order_id} {amount}\n")
    return json.dumps({"refund_id": f"rf_{order_id.lower()}", "amount": amount})


async def langgraph(gate: Gate, resume: bool) -> str:
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from signoff.integrations.langgraph import SignoffMiddleware
    from tests.integrations.fake_chat_model import ToolCallingFakeModel

    @tool
    def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        return refund(order_id, amount)

    call = {"name": "issue_refund", "args": {"order_id": "ORD-1", "amount": 250.0}, "id": "tc-1"}
    asks = AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}])
    # a new process's model goes on from where the conversation is: after the tool result
    model = ToolCallingFakeModel(messages=iter([ANSWER] if resume else [asks, ANSWER]))
    signoff = SignoffMiddleware(gate, agent_id=RUN.agent_id, policies=POLICIES)
    config: Any = {"configurable": {"thread_id": RUN.run_id}}
    async with AsyncSqliteSaver.from_conn_string(os.environ["CHECKPOINT"]) as saver:
        graph = create_agent(model, tools=[issue_refund], middleware=[signoff], checkpointer=saver)
        given: Any = None if resume else {"messages": [{"role": "user", "content": PROMPT}]}
        # "sync": the model's turn is saved before the tools node runs (LangGraph's default,
        # "async", saves it while the node starts: a kill in those milliseconds loses it)
        state = await graph.ainvoke(given, config, durability="sync")
    return str(state["messages"][-1].content)


async def pydantic_ai(gate: Gate, resume: bool) -> str:
    from pydantic_ai import (
        Agent,
        ModelMessagesTypeAdapter,
        ModelRequest,
        ModelResponse,
        TextPart,
        Tool,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.toolsets import FunctionToolset

    from signoff.integrations.pydantic_ai import SignoffToolset

    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(part, ToolReturnPart) for part in last.parts
        ):  # the tool's result came back
            return ModelResponse(parts=[TextPart(ANSWER)])
        args = {"order_id": "ORD-1", "amount": 250.0}
        return ModelResponse(parts=[ToolCallPart("issue_refund", args, "tc-1")])

    tools: FunctionToolset[None] = FunctionToolset([Tool(refund, name="issue_refund")])
    tools_ = SignoffToolset(tools, gate=gate, run=RUN, policies=POLICIES)
    agent = Agent(FunctionModel(respond), toolsets=[tools_])
    checkpoint = Path(os.environ["CHECKPOINT"])
    if resume:
        history = ModelMessagesTypeAdapter.validate_json(checkpoint.read_bytes())
        return (await agent.run(message_history=history)).output
    async with agent.iter(PROMPT) as run:
        async for _node in run:  # checkpoint the messages before each step
            checkpoint.write_bytes(ModelMessagesTypeAdapter.dump_json(run.all_messages()))
    assert run.result is not None
    return run.result.output


async def openai_agents(gate: Gate, resume: bool) -> str:
    import openai
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

    from signoff.integrations.openai_agents import PausedRun, gated_tool, pause

    client = openai.AsyncOpenAI(
        api_key="test", base_url=os.environ["FAKE_MODEL_URL"] + "/v1", max_retries=0
    )
    body = function_tool(refund, name_override="issue_refund")
    tool = gated_tool(gate, body, run=RUN, policy=POLICIES["issue_refund"])
    model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
    agent = Agent(name="support", model=model, tools=[tool])
    config = RunConfig(tracing_disabled=True)
    checkpoint = Path(os.environ["CHECKPOINT"])
    if resume:
        paused = await PausedRun.from_json(agent, json.loads(checkpoint.read_text()))
    else:
        result = await Runner.run(agent, PROMPT, run_config=config)
        started = await pause(gate, result, run=RUN)
        assert started is not None
        paused = started
        # written whole or not at all: the test may kill this process at any moment
        partial = checkpoint.with_suffix(".partial")
        partial.write_text(json.dumps(paused.to_json()))
        partial.replace(checkpoint)
    await paused.wait(gate)  # the test kills the first process here
    finished = await Runner.run(agent, await paused.apply(gate), run_config=config)
    return str(finished.final_output)


async def main(framework: str, step: str) -> None:
    gate = Gate(f"sqlite:///{os.environ['AGENT_DB']}")
    runs = {"langgraph": langgraph, "pydantic-ai": pydantic_ai, "openai-agents": openai_agents}
    answer = await runs[framework](gate, step == "resume")
    await gate.aclose()
    print(answer, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
