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
from signoff.backend import LocalBackend
from signoff.bus.base import ListenerDropped
from signoff.errors import SignoffError, UsageError
from signoff.events import EventType
from signoff.gate import Gate
from signoff.models import ApprovalRequest, Principal, Status
from signoff.types import JSONObject

log = logging.getLogger(__name__)

__all__ = ["Approve", "Reject", "ScriptedApprover"]


@dataclass(frozen=True, slots=True)
class Approve:
    reason: str | None = None
    modified_args: JSONObject | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = "Rejected by the scripted approver."


#: what a script returns for a request: approve, reject, or None to leave it pending
Action: TypeAlias = Approve | Reject | None
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

    def __post_init__(self) -> None:
        if self.by.role is None:
            self.by = Principal(sub=self.by.sub, role=self.gate.roles.highest)

    async def __aenter__(self) -> ScriptedApprover:
        await self.gate.start()
        backend = self.gate.backend
        if not isinstance(backend, LocalBackend):
            raise UsageError("ScriptedApprover drives an embedded gate (sqlite:// or memory://)")
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(backend, ready), name="scripted-approver")
        await ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_task(self._task)

    async def _run(self, backend: LocalBackend, ready: asyncio.Event) -> None:
        bus = backend.service.bus
        seen: set[str] = set()
        while True:
            with bus.listen(maxsize=10_000) as listener:
                # subscribe first, then catch up, so nothing created in between is missed
                for request in await self.gate.pending():
                    await self._decide(request, seen)
                ready.set()
                try:
                    async for event in listener:
                        if event.type == EventType.CREATED:
                            request = event.snapshot
                            await self._decide(request, seen)
                except ListenerDropped:
                    continue

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
            else:
                return
        except SignoffError as exc:
            self.errors.append(exc)
            return
        self.decided.append((request.id, action))
