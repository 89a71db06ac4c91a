"""OpenAI tool loops (Responses and Chat Completions), with every tool call behind the gate.

    from openai import AsyncOpenAI
    from signoff.integrations.openai import run_agent, run_chat_agent

    result = await run_agent(AsyncOpenAI(), gate, model="gpt-5", input="Refund order ORD-1",
                             tools=[issue_refund, lookup_order])
    result = await run_chat_agent(AsyncOpenAI(), gate, model="gpt-5",
                                  messages=[{"role": "user", "content": "Refund order ORD-1"}],
                                  tools=[issue_refund, lookup_order])

Each function call is gated with the provider's id (``call_id``, or the tool call's ``id``)
as the ``tool_call_id`` and its arguments as the model wrote them (JSON text: the gate turns
text that is not a JSON object into an error result for the model). The calls of one turn
are gated concurrently and answered in order. Sync ``OpenAI`` clients work too: they are
called in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from signoff.errors import MissingDependency
from signoff.gate import Gate
from signoff.integrations._durable import run_durably
from signoff.integrations._loop import (
    AgentResult,
    AnyTool,
    ToolCallRequest,
    Transcript,
    call_client,
    reject_streaming,
)
from signoff.models import Run
from signoff.outcome import Outcome

try:
    import openai
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionFunctionToolParam,
        ChatCompletionMessage,
    )
    from openai.types.responses import FunctionToolParam, Response
except ImportError as exc:
    raise MissingDependency("openai", "openai") from exc

__all__ = [
    "AgentResult",
    "ChatCompletionsProvider",
    "ResponsesProvider",
    "chat_tool_definitions",
    "run_agent",
    "run_chat_agent",
    "tool_definitions",
]

OpenAIClient = openai.AsyncOpenAI | openai.OpenAI


# -- the Responses API ---------------------------------------------------------------------


def tool_definitions(tools: Sequence[AnyTool]) -> list[FunctionToolParam]:
    """The Responses API's ``tools`` for gated tools (function tools, not strict)."""
    return [
        {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.json_schema,
            "strict": False,
        }
        for tool in tools
    ]


async def run_agent(
    client: OpenAIClient,
    gate: Gate,
    *,
    model: str,
    input: str | Iterable[Mapping[str, Any]],
    tools: Sequence[AnyTool],
    run: Run | None = None,
    max_turns: int = 10,
    app: str | None = None,
    **create_kwargs: Any,
) -> AgentResult:
    """Run the model with ``tools`` on the Responses API until it stops calling them.

    ``input`` is a string (one user message) or a list of input items; ``create_kwargs`` go
    to ``client.responses.create`` as they are (``instructions``, ``reasoning`` …). The run
    sends the whole input list each turn. ``.messages`` is that list: the input items, the
    model's output items and one ``function_call_output`` per call. Function calls in
    ``input`` without an output yet are gated first (a resumed run).
    """
    reject_streaming(create_kwargs)
    provider = ResponsesProvider(client, model=model, tools=tools, create_kwargs=create_kwargs)
    if isinstance(input, str):
        transcript: Transcript = [{"role": "user", "content": input}]
    else:
        transcript = [dict(item) for item in input]
    return await run_durably(
        "openai-responses",
        provider,
        gate,
        tools,
        transcript,
        run=run,
        max_turns=max_turns,
        model=model,
        create_kwargs=create_kwargs,
        app=app,
    )


class ResponsesProvider:
    """The Responses API's wire format, for :func:`~signoff.integrations._loop.run_tool_loop`."""

    def __init__(
        self,
        client: OpenAIClient,
        *,
        model: str,
        tools: Sequence[AnyTool],
        create_kwargs: Mapping[str, Any],
    ) -> None:
        self._create = client.responses.create
        self._params: dict[str, Any] = {"model": model}
        if tools:
            self._params["tools"] = tool_definitions(tools)
        self._params.update(create_kwargs)

    async def create(self, transcript: Transcript) -> Response:
        response = await call_client(self._create, input=transcript, **self._params)
        if not isinstance(response, Response):
            raise TypeError(f"responses.create returned {type(response).__name__}, not a Response")
        return response

    def append_assistant(self, transcript: Transcript, response: Response) -> None:
        # output items go back as input items as they came (reasoning items included)
        transcript.extend(item.to_dict(mode="json") for item in response.output)

    def pending_calls(self, transcript: Transcript) -> list[ToolCallRequest]:
        answered = {
            item.get("call_id") for item in transcript if item.get("type") == "function_call_output"
        }
        return [
            ToolCallRequest(str(item["call_id"]), str(item["name"]), _arguments(item["arguments"]))
            for item in transcript
            if item.get("type") == "function_call" and item.get("call_id") not in answered
        ]

    def append_results(
        self, transcript: Transcript, calls: Sequence[ToolCallRequest], outcomes: Sequence[Outcome]
    ) -> None:
        transcript.extend(
            {"type": "function_call_output", "call_id": call.id, "output": outcome.to_model()}
            for call, outcome in zip(calls, outcomes, strict=True)
        )

    def ends_run(self, response: Response) -> bool:
        return False  # the run goes on while the output holds function calls

    def final_text(self, response: Response) -> str:
        return response.output_text


# -- Chat Completions ----------------------------------------------------------------------


def chat_tool_definitions(tools: Sequence[AnyTool]) -> list[ChatCompletionFunctionToolParam]:
    """The Chat Completions API's ``tools`` for gated tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.json_schema,
            },
        }
        for tool in tools
    ]


async def run_chat_agent(
    client: OpenAIClient,
    gate: Gate,
    *,
    model: str,
    messages: Iterable[Mapping[str, Any]],
    tools: Sequence[AnyTool],
    run: Run | None = None,
    max_turns: int = 10,
    app: str | None = None,
    **create_kwargs: Any,
) -> AgentResult:
    """Run the model with ``tools`` on Chat Completions until it stops calling them.

    ``create_kwargs`` go to ``client.chat.completions.create`` as they are. ``.messages`` is
    the conversation: the input messages, each assistant message (with its ``tool_calls``)
    and one ``tool`` message per call. A ``messages`` list that ends with an assistant
    message whose tool calls are unanswered is resumed by gating those calls first.
    """
    reject_streaming(create_kwargs)
    provider = ChatCompletionsProvider(
        client, model=model, tools=tools, create_kwargs=create_kwargs
    )
    transcript: Transcript = [dict(message) for message in messages]
    return await run_durably(
        "openai-chat",
        provider,
        gate,
        tools,
        transcript,
        run=run,
        max_turns=max_turns,
        model=model,
        create_kwargs=create_kwargs,
        app=app,
    )


class ChatCompletionsProvider:
    """Chat Completions' wire format, for :func:`~signoff.integrations._loop.run_tool_loop`."""

    def __init__(
        self,
        client: OpenAIClient,
        *,
        model: str,
        tools: Sequence[AnyTool],
        create_kwargs: Mapping[str, Any],
    ) -> None:
        self._create = client.chat.completions.create
        self._params: dict[str, Any] = {"model": model}
        if tools:
            self._params["tools"] = chat_tool_definitions(tools)
        self._params.update(create_kwargs)

    async def create(self, transcript: Transcript) -> ChatCompletion:
        response = await call_client(self._create, messages=transcript, **self._params)
        if not isinstance(response, ChatCompletion):
            kind = type(response).__name__
            raise TypeError(f"chat.completions.create returned {kind}, not a ChatCompletion")
        return response

    def append_assistant(self, transcript: Transcript, response: ChatCompletion) -> None:
        # built field by field: the response message has output-only fields (annotations,
        # audio) that are not part of an assistant message sent back
        message = _first_message(response)
        turn: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.refusal is not None:
            turn["refusal"] = message.refusal
        if message.tool_calls:
            turn["tool_calls"] = [call.to_dict(mode="json") for call in message.tool_calls]
        transcript.append(turn)

    def pending_calls(self, transcript: Transcript) -> list[ToolCallRequest]:
        # tool messages must follow their assistant message at once, so only the last
        # message can hold unanswered calls
        if not transcript or transcript[-1].get("role") != "assistant":
            return []
        calls = transcript[-1].get("tool_calls") or []
        pending = []
        for call in calls:
            kind = call.get("type", "function")
            # a custom tool call carries free text; it reaches the gate to be refused
            detail = call.get(kind) or {}
            raw = detail.get("arguments", detail.get("input", ""))
            name = str(detail.get("name"))
            pending.append(ToolCallRequest(str(call["id"]), name, _arguments(raw)))
        return pending

    def append_results(
        self, transcript: Transcript, calls: Sequence[ToolCallRequest], outcomes: Sequence[Outcome]
    ) -> None:
        transcript.extend(
            {"role": "tool", "tool_call_id": call.id, "content": outcome.to_model()}
            for call, outcome in zip(calls, outcomes, strict=True)
        )

    def ends_run(self, response: ChatCompletion) -> bool:
        return False  # the run goes on while the message holds tool calls

    def final_text(self, response: ChatCompletion) -> str:
        return _first_message(response).content or ""


def _first_message(response: ChatCompletion) -> ChatCompletionMessage:
    if not response.choices:
        raise ValueError(f"chat completion {response.id} has no choices")
    return response.choices[0].message


def _arguments(value: object) -> Mapping[str, Any] | str:
    # the APIs send JSON text; the gate parses it and refuses text that is not an object
    if isinstance(value, str | Mapping):
        return value
    return json.dumps(value)
