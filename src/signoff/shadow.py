"""Shadow mode: what a tool's policy would have asked, recorded instead of asked.

A ``[[tools]]`` entry with ``mode = "shadow"`` never makes a call wait: the gate evaluates
the policy as usual, appends one audit event of type :data:`SHADOW_EVENT` with the verdict
it would have applied (run / ask / deny, with the floor's ``min_role`` and ``quorum``), and
runs the tool. The record goes to the audit log rather than becoming a request, because a
request nobody is meant to decide would sit in every approver's queue and expire there.
The records carry the call (tool, arguments, run) so ``signoff policy replay`` can
evaluate a candidate policy against them as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signoff.audit import AuditEntry, AuditEvent
from signoff.models import Run
from signoff.stores.base import Store
from signoff.types import JSONObject

__all__ = ["SHADOW_EVENT", "ShadowRecord", "shadow_records"]

SHADOW_EVENT = "shadow.verdict"
#: audit events read per page when the log is scanned for shadow records
PAGE = 500
VERDICTS = ("run", "ask", "deny")


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """One call of a shadow-mode tool, and the verdict its policy would have applied."""

    tool: str
    verdict: str
    args: JSONObject
    run: Run
    at: datetime
    min_role: str | None = None
    quorum: int = 1
    reason: str | None = None
    #: why the verdict was reached when it was not the policy's own answer (a failure)
    note: str | None = None
    tool_call_id: str | None = None
    #: where the record sits in the audit log (None before it is stored)
    position: int | None = None

    @property
    def id(self) -> str:
        return f"audit:{self.position}"

    def entry(self) -> AuditEntry:
        """The audit event that records this call: the agent is the actor."""
        actor: JSONObject = {"sub": self.run.agent_id, "kind": "agent", "role": None}
        data: JSONObject = {
            "tool": self.tool,
            "verdict": self.verdict,
            "min_role": self.min_role,
            "quorum": self.quorum,
            "reason": self.reason,
            "note": self.note,
            "args": self.args,
            "run": self.run.model_dump(mode="json"),
            "tool_call_id": self.tool_call_id,
        }
        return AuditEntry(SHADOW_EVENT, None, actor, self.at, "shadow", data)

    @classmethod
    def from_event(cls, event: AuditEvent) -> ShadowRecord | None:
        """The record an audit event holds; None for any other event, or one whose body
        does not have the shape (the log is read as data: nothing in it is trusted)."""
        try:
            body = event.body
            if body.get("type") != SHADOW_EVENT:
                return None
            data: dict[str, Any] = body["data"]
            verdict = data["verdict"]
            quorum = data.get("quorum", 1)
            if verdict not in VERDICTS or not isinstance(data["args"], dict):
                return None
            if not isinstance(quorum, int) or isinstance(quorum, bool):
                return None
            return cls(
                tool=str(data["tool"]),
                verdict=verdict,
                args=data["args"],
                run=Run.model_validate(data.get("run") or {}),
                at=datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00")),
                min_role=_text(data.get("min_role")),
                quorum=quorum,
                reason=_text(data.get("reason")),
                note=_text(data.get("note")),
                tool_call_id=_text(data.get("tool_call_id")),
                position=event.position,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


async def shadow_records(
    store: Store, since: datetime | None = None
) -> AsyncIterator[ShadowRecord]:
    """The shadow records in the audit log, oldest first, from ``since`` on. The log has no
    index by type: this reads it page by page, giving the event loop a turn between pages."""
    after = 0
    while True:
        events = await store.audit_events(after=after, limit=PAGE)
        if not events:
            return
        for event in events:
            record = ShadowRecord.from_event(event)
            if record is not None and (since is None or record.at >= since):
                yield record
        after = events[-1].position
        await asyncio.sleep(0)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
