"""What the gate adds to a tool call its policy lets through, inside each agent framework.

Each framework is timed two ways, each with its plain tool and with the tool behind
signoff's adapter (a memory gate whose policy lets the call through), side by side:

- ``tool_call``: the framework's own entry point for running one tool call — a LangGraph
  graph of one ``ToolNode`` (``awrap_tool_call``), a Pydantic AI toolset's ``call_tool``,
  an Agents SDK ``FunctionTool``'s ``needs_approval`` and ``on_invoke_tool``. The difference
  is signoff's cost per call (``overhead_us_per_call``).
- ``agent_run``: the framework's whole loop with its own in-process test model (the model
  asks for the tool, the tool runs, the model answers): the same cost, against what a run
  costs anyway. On this shared machine its noise is larger than the overhead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from signoff import Gate, Policy, Run

RUN = Run(agent_id="bench", run_id="bench-thread")
LETS_THROUGH = {"lookup_order": Policy(when=lambda ctx: ctx.args["amount"] > 100)}
ARGS = {"order_id": "ORD-1", "amount": 50.0}
#: how many blocks the runs of each side are split into
BLOCKS = 10


def lookup_order(order_id: str, amount: float) -> str:
    """Look up an order."""
    return f"{order_id}: {amount}"


async def side_by_side(
    n: int, gated: Callable[[], Awaitable[None]], plain: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """µs per run, gated and plain: the best block of each, blocks taken in turn.

    Taking the two in alternating blocks, and the best block of each, keeps the machine's
    drift (other load, a collector pass) from landing on one side only.
    """
    for once in (gated, plain):
        await once()  # warm up: imports, caches, the gate's first look at the tool
    block = max(1, n // BLOCKS)
    best = {gated: float("inf"), plain: float("inf")}
    for _ in range(BLOCKS):
        for once in (gated, plain):
            start = time.perf_counter()
            for _ in range(block):
                await once()
            best[once] = min(best[once], (time.perf_counter() - start) / block * 1e6)
    return best[gated], best[plain]


async def langgraph(plain: bool) -> Callable[[], Awaitable[None]]:
    import itertools

    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from signoff.integrations.langgraph import SignoffMiddleware

    class Scripted(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    call = {"name": "lookup_order", "args": ARGS, "id": "call_1", "type": "tool_call"}
    turns = itertools.cycle([AIMessage(content="", tool_calls=[call]), "Done."])
    middleware = [] if plain else [SignoffMiddleware(Gate("memory://"), policies=LETS_THROUGH)]
    agent = create_agent(
        Scripted(messages=turns), tools=[tool(lookup_order)], middleware=middleware
    )
    config: Any = {"configurable": {"thread_id": RUN.run_id}}
    prompt: Any = {"messages": [{"role": "user", "content": "Look up ORD-1"}]}

    async def once() -> None:
        await agent.ainvoke(prompt, config)

    return once


async def pydantic_ai(plain: bool) -> Callable[[], Awaitable[None]]:
    from pydantic_ai import Agent, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

    from signoff.integrations.pydantic_ai import SignoffToolset

    def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
        if len(messages) > 1:
            return ModelResponse(parts=[TextPart("Done.")])
        return ModelResponse(parts=[ToolCallPart("lookup_order", ARGS, "call_1")])

    tools: AbstractToolset[None] = FunctionToolset([lookup_order])
    if not plain:
        tools = SignoffToolset(tools, gate=Gate("memory://"), run=RUN, policies=LETS_THROUGH)
    agent = Agent(FunctionModel(respond), toolsets=[tools])

    async def once() -> None:
        await agent.run("Look up ORD-1")

    return once


async def openai_agents(plain: bool) -> Callable[[], Awaitable[None]]:
    from agents import Agent, Model, ModelResponse, RunConfig, Runner, Usage, function_tool
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    from signoff.integrations.openai_agents import gated_tool

    class Scripted(Model):
        """In-process model: the tool call, then the answer (no HTTP in the timing)."""

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            given = args[1] if len(args) > 1 else kwargs["input"]
            answered = isinstance(given, list) and any(
                isinstance(item, dict) and item.get("type") == "function_call_output"
                for item in given
            )
            output: list[Any]
            if answered:
                text = ResponseOutputText(type="output_text", text="Done.", annotations=[])
                output = [
                    ResponseOutputMessage(
                        id="msg_1",
                        type="message",
                        role="assistant",
                        status="completed",
                        content=[text],
                    )
                ]
            else:
                output = [
                    ResponseFunctionToolCall(
                        type="function_call",
                        call_id="call_1",
                        name="lookup_order",
                        arguments='{"order_id": "ORD-1", "amount": 50.0}',
                    )
                ]
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            raise NotImplementedError

    tool = function_tool(lookup_order)
    if not plain:
        tool = gated_tool(Gate("memory://"), tool, run=RUN, policy=LETS_THROUGH["lookup_order"])
    agent = Agent(name="bench", model=Scripted(), tools=[tool])
    config = RunConfig(tracing_disabled=True)

    async def once() -> None:
        await Runner.run(agent, "Look up ORD-1", run_config=config)

    return once


async def langgraph_tool_call(plain: bool) -> Callable[[], Awaitable[None]]:
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from signoff.integrations.langgraph import tool_call_wrapper

    wrapper = None if plain else tool_call_wrapper(Gate("memory://"), policies=LETS_THROUGH)
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode([tool(lookup_order)], awrap_tool_call=wrapper))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    graph = builder.compile()
    call = {"name": "lookup_order", "args": ARGS, "id": "call_1", "type": "tool_call"}
    given: Any = {"messages": [AIMessage(content="", tool_calls=[call])]}
    config: Any = {"configurable": {"thread_id": RUN.run_id}}

    async def once() -> None:
        await graph.ainvoke(given, config)

    return once


async def pydantic_ai_tool_call(plain: bool) -> Callable[[], Awaitable[None]]:
    from pydantic_ai import RunContext
    from pydantic_ai.models.test import TestModel
    from pydantic_ai.toolsets import AbstractToolset, FunctionToolset
    from pydantic_ai.usage import RunUsage

    from signoff.integrations.pydantic_ai import SignoffToolset

    toolset: AbstractToolset[None] = FunctionToolset([lookup_order])
    if not plain:
        toolset = SignoffToolset(toolset, gate=Gate("memory://"), run=RUN, policies=LETS_THROUGH)
    context = RunContext(
        deps=None,
        model=TestModel(),
        usage=RunUsage(),
        tool_call_id="call_1",
        tool_name="lookup_order",
    )
    tool = (await toolset.get_tools(context))["lookup_order"]

    async def once() -> None:
        await toolset.call_tool("lookup_order", dict(ARGS), context, tool)

    return once


async def openai_agents_tool_call(plain: bool) -> Callable[[], Awaitable[None]]:
    import json

    from agents import function_tool
    from agents.tool_context import ToolContext

    from signoff.integrations.openai_agents import gated_tool

    tool = function_tool(lookup_order)
    if not plain:
        tool = gated_tool(Gate("memory://"), tool, run=RUN, policy=LETS_THROUGH["lookup_order"])
    text = json.dumps(ARGS)
    context: ToolContext[None] = ToolContext(
        context=None, tool_name="lookup_order", tool_call_id="call_1", tool_arguments=text
    )
    needs_approval = tool.needs_approval

    async def once() -> None:
        # what the SDK does for a call: ask needs_approval (a callable when gated), invoke
        if callable(needs_approval):
            assert not await needs_approval(context, dict(ARGS), "call_1")
        await tool.on_invoke_tool(context, text)

    return once


Build = Callable[[bool], Awaitable[Callable[[], Awaitable[None]]]]
#: per framework: (one tool call, one agent run)
FRAMEWORKS: dict[str, tuple[Build, Build]] = {
    "langgraph": (langgraph_tool_call, langgraph),
    "pydantic-ai": (pydantic_ai_tool_call, pydantic_ai),
    "openai-agents": (openai_agents_tool_call, openai_agents),
}


async def measure_frameworks(n: int) -> dict[str, dict[str, Any]]:
    """Per framework: µs per tool call and per one-call agent run, with signoff and without.

    ``n`` agent runs per side; tool calls, which cost less, ten times as many.
    """
    results: dict[str, dict[str, Any]] = {}
    for name, (tool_call, agent_run) in FRAMEWORKS.items():
        call_gated, call_plain = await side_by_side(
            n * 10, await tool_call(False), await tool_call(True)
        )
        run_gated, run_plain = await side_by_side(n, await agent_run(False), await agent_run(True))
        results[name] = {
            "tool_call": {"gated_us": round(call_gated, 1), "direct_us": round(call_plain, 1)},
            "agent_run": {"gated_us": round(run_gated, 1), "direct_us": round(run_plain, 1)},
            "overhead_us_per_call": round(call_gated - call_plain, 1),
        }
    return results
