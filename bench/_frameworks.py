"""What the gate adds to a tool call its policy lets through, inside each agent framework.

Each framework runs the same one-call agent run twice over: with its plain tool, and with
the tool behind signoff's adapter (a memory gate whose policy never asks). One run is the
framework's whole loop with its own in-process test model: the model asks for the tool, the
tool runs, the model answers. The difference between the two timings is signoff's cost per
call in that framework; the rest is the framework's own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from signoff import Gate, Policy, Run

RUN = Run(agent_id="bench", run_id="bench-thread")
LETS_THROUGH = {"lookup_order": Policy(when=lambda ctx: ctx.args["amount"] > 100)}
ARGS = {"order_id": "ORD-1", "amount": 50.0}


def lookup_order(order_id: str, amount: float) -> str:
    """Look up an order."""
    return f"{order_id}: {amount}"


async def best_of(runs: int, n: int, once: Callable[[], Awaitable[None]]) -> float:
    """The best of ``runs`` timings of ``n`` awaited runs, in µs per run."""
    await once()  # warm up: imports, caches, the gate's first look at the tool
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            await once()
        timings.append((time.perf_counter() - start) / n * 1e6)
    return min(timings)


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


FRAMEWORKS = {"langgraph": langgraph, "pydantic-ai": pydantic_ai, "openai-agents": openai_agents}


async def measure_frameworks(n: int, runs: int = 3) -> dict[str, dict[str, float]]:
    """Per framework: µs per one-call agent run with signoff's adapter and without it."""
    results: dict[str, dict[str, float]] = {}
    for name, build in FRAMEWORKS.items():
        gated = await best_of(runs, n, await build(False))
        plain = await best_of(runs, n, await build(True))
        results[name] = {
            "gated_us_per_call": round(gated, 1),
            "direct_us_per_call": round(plain, 1),
            "overhead_us_per_call": round(gated - plain, 1),
        }
    return results
