"""The result of one gated call, and what the model is told about it (docs/guide.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signoff._util import jsonable
from signoff.models import ApprovalRequest
from signoff.types import JSONObject


class CallStatus(StrEnum):
    EXECUTED = "executed"  # the tool ran (with or without approval)
    FAILED = "failed"  # the tool ran and raised
    REJECTED = "rejected"  # an approver or the policy said no
    TIMEOUT = "timeout"  # nobody decided in time
    CANCELLED = "cancelled"  # a hook or the agent cancelled it
    SKIPPED = "skipped"  # a hook answered in the tool's place
    INVALID = "invalid"  # unknown tool or arguments that do not fit its schema
    UNAVAILABLE = "unavailable"  # the approval backend could not be reached: not run
    ALREADY_CONSUMED = "already_consumed"  # the approval was used once already: not run again
    PENDING = "pending"  # submitted, not waited for (gate.call(wait=False)): not run yet
    AUTHORIZED = "authorized"  # gate.authorize: cleared to run once, by the caller
    RESPONDED = "responded"  # an approver answered in the tool's place: not run


#: the ``error`` code the model sees for each status that did not run the tool
_ERROR_CODES = {
    CallStatus.REJECTED: "approval_rejected",
    CallStatus.TIMEOUT: "approval_timeout",
    CallStatus.CANCELLED: "approval_cancelled",
    CallStatus.INVALID: "invalid_tool_call",
    CallStatus.UNAVAILABLE: "approval_unavailable",
    CallStatus.ALREADY_CONSUMED: "approval_already_used",
    CallStatus.FAILED: "tool_failed",
    CallStatus.PENDING: "approval_pending",
}


_NOT_ERRORS = (CallStatus.EXECUTED, CallStatus.SKIPPED, CallStatus.AUTHORIZED, CallStatus.RESPONDED)


@dataclass(slots=True)
class Outcome:
    """What happened to a gated call: ran, rejected, timed out, cancelled …

    ``args`` are the arguments the model proposed; ``final_args`` the ones the approver
    allowed (equal to ``args`` unless edited); ``executed_args`` the ones the tool was
    actually called with (``None`` when it did not run). The three are kept apart on purpose.
    """

    status: CallStatus
    tool: str
    args: JSONObject
    final_args: JSONObject | None = None
    executed_args: JSONObject | None = None
    result: Any = None
    message: str | None = None
    request: ApprovalRequest | None = None
    tool_call_id: str | None = None
    error: BaseException | None = field(default=None, repr=False)

    @property
    def ran(self) -> bool:
        return self.status in (CallStatus.EXECUTED, CallStatus.FAILED)

    @property
    def is_error(self) -> bool:
        """Whether the model should see this result flagged as an error."""
        return self.status not in _NOT_ERRORS

    @property
    def modified_fields(self) -> dict[str, tuple[Any, Any]]:
        return self.request.modified_fields if self.request is not None else {}

    def to_model(self) -> str:
        """The tool result text handed back to the model."""
        if self.status in (CallStatus.EXECUTED, CallStatus.SKIPPED):
            changed = self.modified_fields
            if not changed:
                return _as_text(self.result)
            names = ", ".join(changed)
            return json.dumps(
                {
                    "result": jsonable(self.result),
                    "approval": {
                        "modified_by_approver": {
                            name: {"proposed": jsonable(before), "approved": jsonable(after)}
                            for name, (before, after) in changed.items()
                        },
                        "note": (
                            f"An approver changed {names} before the call ran; it ran with the "
                            "approved values, not the ones you proposed."
                        ),
                    },
                },
                ensure_ascii=False,
            )
        if self.status is CallStatus.RESPONDED:
            # the approver's answer is the tool's result, as the model would have had it
            return _as_text(self.result)
        if self.status is CallStatus.AUTHORIZED:
            # not a final answer: the caller runs the tool and reports (gate.report)
            return json.dumps({"authorized": True, "arguments": jsonable(self.final_args)})
        body = {
            "error": _ERROR_CODES[self.status],
            "message": self.message or self.status.value,
            "tool": self.tool,
            "parameters": jsonable(self.args),
        }
        return json.dumps(body, ensure_ascii=False)

    def to_model_json(self) -> Any:
        """:meth:`to_model` parsed back, for callers that want structure rather than text."""
        text = self.to_model()
        try:
            return json.loads(text)
        except ValueError:
            return text


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(jsonable(result), ensure_ascii=False)


class NotRun(Exception):
    """The gated call did not run. ``outcome`` says why, in the model's terms."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        super().__init__(outcome.message or outcome.status)


class Rejected(NotRun):
    """An approver or the policy rejected the call."""


class ApprovalTimeout(NotRun):
    """Nobody decided before the request expired."""


class Cancelled(NotRun):
    """The approval request was cancelled."""
