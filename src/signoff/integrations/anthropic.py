"""The Anthropic Messages API tool loop, with every tool call behind the gate.

    from anthropic import AsyncAnthropic
    from signoff.integrations.anthropic import run_agent

    result = await run_agent(
        AsyncAnthropic(), gate, model="claude-sonnet-4-5", max_tokens=1024,
        messages=[{"role": "user", "content": "Refund order ORD-1"}],
        tools=[issue_refund, lookup_order],
    )
    result.final_text, result.messages

Each ``tool_use`` block is gated with its id as the ``tool_call_id``. The calls of one turn
are gated concurrently and answered in one user turn of ``tool_result`` blocks, in the
blocks' order; ``is_error`` is always given, true for a call that did not run or failed
(docs/guide.md). A sync ``Anthropic`` client works too: it is called in a worker thread.
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
    import anthropic
    from anthropic.types import Message, TextBlock, ToolParam
except ImportError as exc:
    raise MissingDependency("anthropic", "anthropic") from exc

__all__ = ["DEFAULT_MAX_TOKENS", "AgentResult", "MessagesProvider", "run_agent", "tool_definitions"]

#: the Messages API requires max_tokens; this is used unless the caller passes one
DEFAULT_MAX_TOKENS = 4096


def tool_definitions(tools: Sequence[AnyTool]) -> list[ToolParam]:
    """The Messages API's ``tools`` for gated tools: name, description and input schema."""
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.json_schema}
        for tool in tools
    ]


async def run_agent(
    client: anthropic.AsyncAnthropic | anthropic.Anthropic,
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
    """Run the model with ``tools`` until it stops asking for them, or ``max_turns`` calls.

    ``create_kwargs`` go to ``client.messages.create`` as they are (``system``,
    ``max_tokens``, ``temperature`` …). Returns the transcript (``.messages``), the text of
    the last turn (``.final_text``), every call's :class:`~signoff.Outcome` (``.outcomes``)
    and the number of model calls (``.turns``). A ``messages`` list that ends with an
    assistant turn whose tool calls are unanswered is resumed by gating those calls first.
    """
    reject_streaming(create_kwargs)
    provider = MessagesProvider(client, model=model, tools=tools, create_kwargs=create_kwargs)
    transcript: Transcript = [dict(message) for message in messages]
    return await run_durably(
        "anthropic",
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


class MessagesProvider:
    """The Messages API's wire format, for :func:`~signoff.integrations._loop.run_tool_loop`."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic | anthropic.Anthropic,
        *,
        model: str,
        tools: Sequence[AnyTool],
        create_kwargs: Mapping[str, Any],
    ) -> None:
        self._create = client.messages.create
        self._params: dict[str, Any] = {"model": model, "max_tokens": DEFAULT_MAX_TOKENS}
        if tools:
            self._params["tools"] = tool_definitions(tools)
        self._params.update(create_kwargs)

    async def create(self, transcript: Transcript) -> Message:
        response = await call_client(self._create, messages=transcript, **self._params)
        if not isinstance(response, Message):
            raise TypeError(f"messages.create returned {type(response).__name__}, not a Message")
        return response

    def append_assistant(self, transcript: Transcript, response: Message) -> None:
        # to_dict keeps exactly what the API sent (thinking signatures included), as JSON
        content = [block.to_dict(mode="json") for block in response.content]
        transcript.append({"role": "assistant", "content": content})

    def pending_calls(self, transcript: Transcript) -> list[ToolCallRequest]:
        # the API wants every tool_use answered in the very next user turn, so only the
        # last turn can hold unanswered calls
        if not transcript or transcript[-1].get("role") != "assistant":
            return []
        content = transcript[-1].get("content")
        if not isinstance(content, list):
            return []
        return [
            ToolCallRequest(str(block["id"]), str(block["name"]), _arguments(block.get("input")))
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "tool_use"
        ]

    def append_results(
        self, transcript: Transcript, calls: Sequence[ToolCallRequest], outcomes: Sequence[Outcome]
    ) -> None:
        results = [
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": outcome.to_model(),
                "is_error": outcome.is_error,
            }
            for call, outcome in zip(calls, outcomes, strict=True)
        ]
        transcript.append({"role": "user", "content": results})

    def ends_run(self, response: Message) -> bool:
        # the model stopped for another reason (max_tokens may cut a tool_use block short)
        return response.stop_reason != "tool_use"

    def final_text(self, response: Message) -> str:
        return "".join(block.text for block in response.content if isinstance(block, TextBlock))


def _arguments(value: object) -> Mapping[str, Any] | str:
    # the API always sends an object; anything else goes to the gate as text, to be refused
    return value if isinstance(value, Mapping) else json.dumps(value)
