"""The provider-neutral tool loop behind the agent integrations.

    ┌─▶ unanswered tool calls at the end of the transcript? ─▶ gate them all at once
    │       ─▶ append their results (one turn, in the calls' order) ─▶ on_step
    │   call the model (at most max_turns times) ─▶ append its turn ─▶ on_step
    └── while the model asks for tools

A :class:`Provider` adapter knows one wire format; this module knows the gate. The
transcript is the whole state of a run: plain JSON-able dicts, exactly as the provider's API
takes them. So a run can be checkpointed after any step (``on_step``) and resumed from the
transcript alone: a transcript that ends with unanswered calls resumes by gating those
calls under the provider's own ids, and the gate (idempotent on ``run_id`` +
``tool_call_id``) re-finds the approval requests made before instead of asking again.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, TypeVar

from signoff._util import loose_args
from signoff.errors import ConfigError, UnknownTool, UsageError
from signoff.gate import Gate, GatedTool
from signoff.models import Run
from signoff.outcome import CallStatus, Outcome

#: a run's messages (or input items), as the provider's API takes them
Transcript: TypeAlias = list[dict[str, Any]]
#: awaited with the transcript after each turn appended to it, e.g. to checkpoint the run
StepCallback: TypeAlias = Callable[[Transcript], Awaitable[None]]
AnyTool: TypeAlias = GatedTool[..., Any]

ResponseT = TypeVar("ResponseT")


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """One tool call the model asked for, in provider-neutral terms."""

    #: the provider's id (Anthropic tool_use id, OpenAI call_id), kept exactly: the gate's
    #: idempotency rests on it
    id: str
    name: str
    #: an object, or the JSON text as the model wrote it (the gate parses and checks it)
    arguments: Mapping[str, Any] | str


class Provider(Protocol[ResponseT]):
    """What the loop needs from one provider's API."""

    async def create(self, transcript: Transcript) -> ResponseT:
        """Call the model with the whole transcript."""

    def append_assistant(self, transcript: Transcript, response: ResponseT) -> None:
        """Append the model's turn, as plain dicts the API takes back."""

    def pending_calls(self, transcript: Transcript) -> list[ToolCallRequest]:
        """The tool calls at the end of the transcript that have no results yet, in order."""

    def append_results(
        self, transcript: Transcript, calls: Sequence[ToolCallRequest], outcomes: Sequence[Outcome]
    ) -> None:
        """Append one result per call, in the calls' order."""

    def ends_run(self, response: ResponseT) -> bool:
        """Whether the model is done, even if its turn holds tool calls (it was cut off)."""

    def final_text(self, response: ResponseT) -> str:
        """The text of the model's turn."""


@dataclass
class AgentResult:
    """What a run of the loop produced."""

    #: the whole transcript, as the provider's API takes it: store it, or send it again
    messages: Transcript
    #: the text of the model's last turn
    final_text: str
    #: every gated call's outcome, in the order the model made them
    outcomes: list[Outcome] = field(default_factory=list)
    #: how many times the model was called
    turns: int = 0
    #: False when ``max_turns`` cut the run short; the transcript then ends with the calls
    #: of the last turn unanswered, and running it again answers them first
    finished: bool = True


async def run_tool_loop(
    provider: Provider[ResponseT],
    gate: Gate,
    tools: Sequence[AnyTool],
    transcript: Transcript,
    *,
    run: Run | None = None,
    max_turns: int = 10,
    on_step: StepCallback | None = None,
) -> AgentResult:
    """Call the model and gate its tool calls until it stops asking, or ``max_turns``.

    ``transcript`` is extended in place (and is the result's ``messages``); ``on_step`` is
    awaited after each turn appended to it. Calls left unanswered at its end are gated first.
    """
    if max_turns < 1:
        raise UsageError("max_turns must be at least 1")
    offered = offered_tools(gate, tools)
    outcomes: list[Outcome] = []
    turns = 0
    response: ResponseT | None = None
    finished = False
    while True:
        calls = provider.pending_calls(transcript)
        if calls:
            if turns >= max_turns:
                # nobody would read these results: do not ask anyone to approve them
                break
            settled = await gate_calls(gate, offered, calls, run)
            outcomes.extend(settled)
            provider.append_results(transcript, calls, settled)
            if on_step is not None:
                await on_step(transcript)
        elif response is not None:
            finished = True  # the model answered without asking for a tool
            break
        response = await provider.create(transcript)
        turns += 1
        provider.append_assistant(transcript, response)
        if on_step is not None:
            await on_step(transcript)
        if provider.ends_run(response):
            finished = True
            break
    text = provider.final_text(response) if response is not None else ""
    return AgentResult(transcript, text, outcomes, turns, finished)


def offered_tools(gate: Gate, tools: Sequence[AnyTool]) -> dict[str, AnyTool]:
    """The tools offered to the model, by name; each must be gated by ``gate``."""
    offered: dict[str, AnyTool] = {}
    for tool in tools:
        name = getattr(tool, "name", None)
        if not isinstance(name, str) or gate.tools.get(name) is not tool:
            raise ConfigError(f"{tool!r} is not a tool of this gate; declare it with @gate.tool")
        offered[name] = tool
    return offered


async def gate_calls(
    gate: Gate, offered: Mapping[str, AnyTool], calls: Sequence[ToolCallRequest], run: Run | None
) -> list[Outcome]:
    """Gate all the calls of one model turn concurrently; the outcomes in the calls' order."""
    tasks = [asyncio.create_task(_gate_one(gate, offered, call, run)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # one call broke (gate.call does not raise for a call that merely did not run) or the
        # run was cancelled: stop the others rather than let them run with nobody reading
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: the first error is the one raised
        raise


async def _gate_one(
    gate: Gate, offered: Mapping[str, AnyTool], call: ToolCallRequest, run: Run | None
) -> Outcome:
    if call.name not in offered:
        # a tool the model was not given, even if the gate knows it, is not called
        known = ", ".join(sorted(offered)) or "none"
        return Outcome(
            CallStatus.INVALID,
            call.name,
            loose_args(call.arguments),
            message=f"unknown tool {call.name!r}; the tools are: {known}",
            tool_call_id=call.id,
            error=UnknownTool(f"unknown tool {call.name!r}"),
        )
    return await gate.call(call.name, call.arguments, tool_call_id=call.id, run=run)


async def call_client(method: Callable[..., object], /, **kwargs: Any) -> object:
    """Call an SDK method of an async client, or of a sync client in a worker thread."""
    # the SDKs wrap their async methods in sync-looking decorators; look through them
    if inspect.iscoroutinefunction(inspect.unwrap(method)):
        result = method(**kwargs)
    else:
        result = await asyncio.to_thread(functools.partial(method, **kwargs))
    # a wrapper that hides its coroutine function still hands back an awaitable
    if inspect.isawaitable(result):
        result = await result
    return result


def reject_streaming(create_kwargs: Mapping[str, Any]) -> None:
    if create_kwargs.get("stream"):
        raise UsageError("run_agent does not stream; leave out stream=True")
