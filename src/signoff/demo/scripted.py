"""A scripted model for the offline demo: it plays the seed scenarios through the real
tool loop (gating, concurrency, transcripts), in the Messages API's transcript format, and
reads the tool results back the way a model would: it says what happened, and when a call
did not run, why."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signoff.integrations._loop import ToolCallRequest, Transcript
from signoff.outcome import Outcome


@dataclass(frozen=True)
class Scenario:
    prompt: str
    #: the tool calls the "model" makes in its first turn: (tool, arguments)
    calls: tuple[tuple[str, dict[str, Any]], ...]
    plan: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "What is the status of order ORD-1002?",
        (("lookup_order", {"order_id": "ORD-1002"}),),
        "Let me look that order up.",
    ),
    Scenario(
        "Order ORD-1001 arrived late; refund the $40 shipping.",
        (("issue_refund", {"order_id": "ORD-1001", "amount": 40, "reason": "late delivery"}),),
        "A $40 refund is within my limit; issuing it.",
    ),
    Scenario(
        "Order ORD-1002 was damaged in transit. Refund it in full.",
        (
            ("lookup_order", {"order_id": "ORD-1002"}),
            (
                "issue_refund",
                {"order_id": "ORD-1002", "amount": 250, "reason": "damaged in transit"},
            ),
        ),
        "Checking the order and refunding $250; the refund needs a human's approval.",
    ),
    Scenario(
        "Publish the blog post called 'Introducing our new API'.",
        (("publish_blog_post", {"title": "Introducing our new API"}),),
        "Publishing needs a publisher's sign-off; asking.",
    ),
    Scenario(
        "sam@example.com asked us to delete their account.",
        (("delete_account", {"email": "sam@example.com"}),),
        "Deleting an account is permanent; it needs two admins.",
    ),
)


@dataclass(frozen=True)
class ScriptedTurn:
    content: list[dict[str, Any]]
    stop_reason: str


class ScriptedModel:
    """A :class:`~signoff.integrations._loop.Provider` that plays one :class:`Scenario`."""

    def __init__(self, scenario: Scenario, call_prefix: str) -> None:
        self.scenario = scenario
        self.call_prefix = call_prefix

    async def create(self, transcript: Transcript) -> ScriptedTurn:
        last = transcript[-1]
        if last.get("role") == "user" and isinstance(last.get("content"), str):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": self.scenario.plan}]
            for n, (tool, args) in enumerate(self.scenario.calls):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_{self.call_prefix}_{n}",
                        "name": tool,
                        "input": args,
                    }
                )
            return ScriptedTurn(blocks, "tool_use")
        lines = [_describe(block) for block in last.get("content", [])]
        return ScriptedTurn([{"type": "text", "text": " ".join(lines)}], "end_turn")

    def append_assistant(self, transcript: Transcript, response: ScriptedTurn) -> None:
        transcript.append({"role": "assistant", "content": response.content})

    def pending_calls(self, transcript: Transcript) -> list[ToolCallRequest]:
        last = transcript[-1]
        if last.get("role") != "assistant":
            return []
        return [
            ToolCallRequest(block["id"], block["name"], block["input"])
            for block in last["content"]
            if block.get("type") == "tool_use"
        ]

    def append_results(
        self, transcript: Transcript, calls: Sequence[ToolCallRequest], outcomes: Sequence[Outcome]
    ) -> None:
        transcript.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": outcome.to_model(),
                        "is_error": outcome.is_error,
                        "name": call.name,
                    }
                    for call, outcome in zip(calls, outcomes, strict=True)
                ],
            }
        )

    def ends_run(self, response: ScriptedTurn) -> bool:
        return response.stop_reason != "tool_use"

    def final_text(self, response: ScriptedTurn) -> str:
        return " ".join(b["text"] for b in response.content if b.get("type") == "text")


def _describe(block: dict[str, Any]) -> str:
    """What a model would say after reading one tool result."""
    name = block.get("name", "the tool")
    try:
        body = json.loads(block.get("content", ""))
    except ValueError:
        body = block.get("content")
    if not block.get("is_error"):
        if isinstance(body, dict) and "approval" in body:
            changed = ", ".join(body["approval"].get("modified_by_approver", {}))
            return (
                f"{name} ran, with {changed} changed by the approver: {json.dumps(body['result'])}."
            )
        return f"{name} ran: {json.dumps(body)}."
    error = body.get("error") if isinstance(body, dict) else "error"
    message = body.get("message") if isinstance(body, dict) else body
    if error == "approval_rejected":
        return f"I could not run {name}: it was not approved ({message}). Shall I try another way?"
    if error == "approval_timeout":
        return f"Nobody approved {name} in time ({message}); I have not done it."
    return f"{name} did not run: {message}."
