"""Public test doubles for users' own tests.

    gate = Gate("memory://")
    async with ScriptedApprover(gate, lambda req: Approve() if req.args["amount"] < 500
                                                  else Reject("too much")):
        outcome = await gate.call("issue_refund", {...})

The scripted approver decides through the same interface a person's code would
(``gate.approve`` / ``gate.reject``), as the identity it is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from signoff._util import resolve, stop_task
from signoff.approvals import LocalApprovals
from signoff.errors import SignoffError, UsageError
from signoff.events import Event, EventType
from signoff.follow import Feed
from signoff.gate import Gate
from signoff.models import ApprovalRequest, Principal, Status
from signoff.types import JSONObject

log = logging.getLogger(__name__)

__all__ = ["Approve", "Reject", "Respond", "ScriptedApprover"]


@dataclass(frozen=True, slots=True)
class Approve:
    reason: str | None = None
    modified_args: JSONObject | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = "Rejected by the scripted approver."


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer in the tool's place: the model receives ``response``; the tool does not run."""

    response: Any
    reason: str | None = None


#: what a script returns for a request: approve, reject, respond, or None to leave it pending
Action: TypeAlias = Approve | Reject | Respond | None
Script: TypeAlias = Callable[[ApprovalRequest], "Action | Awaitable[Action]"]


@dataclass
class ScriptedApprover:
    """Decides every new request of an embedded gate with ``script`` as ``by``."""

    gate: Gate
    script: Script = field(default=lambda request: Approve())
    by: Principal = field(default_factory=lambda: Principal(sub="scripted-approver", role=None))
    #: (request id, action) for every decision made, in order
    decided: list[tuple[str, Action]] = field(default_factory=list)
    errors: list[SignoffError] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _feed: Feed[Event] | None = None
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.by.role is None:
            self.by = Principal(sub=self.by.sub, role=self.gate.roles.highest)

    async def __aenter__(self) -> ScriptedApprover:
        await self.gate.start()
        if not isinstance(self.gate.approvals, LocalApprovals):
            raise UsageError("ScriptedApprover drives an embedded gate (sqlite:// or memory://)")
        # follow first, then catch up at every opening: nothing created in between is missed
        self._feed = self.gate.approvals.follow(on_open=self._catch_up)
        await self._feed.__aenter__()
        self._task = asyncio.create_task(self._run(self._feed), name="scripted-approver")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_task(self._task)
        if self._feed is not None:
            await self._feed.aclose()

    async def _catch_up(self) -> None:
        for request in await self.gate.pending():
            await self._decide(request, self._seen)

    async def _run(self, feed: Feed[Event]) -> None:
        async for event in feed:
            if event.type == EventType.CREATED:
                await self._decide(event.snapshot, self._seen)

    async def _decide(self, request: ApprovalRequest, seen: set[str]) -> None:
        if request.id in seen or request.status is not Status.PENDING:
            return
        seen.add(request.id)
        action: Any = await resolve(self.script, request)
        try:
            if isinstance(action, Approve):
                await self.gate.approve(
                    request,
                    by=self.by,
                    reason=action.reason,
                    modified_args=action.modified_args,
                )
            elif isinstance(action, Reject):
                await self.gate.reject(request, by=self.by, reason=action.reason)
            elif isinstance(action, Respond):
                await self.gate.respond(request, action.response, by=self.by, reason=action.reason)
            else:
                return
        except SignoffError as exc:
            self.errors.append(exc)
            return
        self.decided.append((request.id, action))
