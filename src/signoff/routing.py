"""Which channels hear about a request: routes, a tool's own channels, escalation steps.

Everything here is a pure function of the request (and the event that changed it): the
service calls :meth:`Routing.deliveries` inside each transition, so the deliveries are
computed from the request exactly as it is written, and written in the same transaction.

- A request's channels are those of every ``[[routes]]`` whose ``when`` holds for it, its
  own ``channels`` (the tool's entry in the config, and the code's policy) that name a
  configured channel, and the channels of every escalation step that already fired. Each
  hears every event about the request, so that a channel can update what it sent before.
- ``when`` is CEL over ``tool``, ``risk``, ``args`` (as the agent proposed them, so that an
  edit never moves a request to other channels), ``run`` and ``policy``. A condition that
  fails to evaluate counts as matching: a notification too many beats an approver who never
  hears of the request.
- Escalation steps are numbered 1, 2 … across the matching routes, in order of ``after``;
  a step fires once, after its delay, while the request is still pending
  (:func:`signoff.lifecycle.escalate`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from signoff._util import new_id
from signoff.audit import AuditEntry
from signoff.models import ApprovalRequest
from signoff.policy import compile_cel
from signoff.stores.base import Change, TransitionFn
from signoff.stores.outbox import NewDelivery

log = logging.getLogger(__name__)

#: audit event type → the notice it is delivered as (signoff.channels.base.NoticeType)
NOTICE_TYPES: Mapping[str, str] = {
    "request.created": "approval_request",
    "decision.recorded": "approval_decided",
    "request.approved": "approval_decided",
    "request.rejected": "approval_decided",
    "request.expired": "approval_expired",
    "request.cancelled": "approval_cancelled",
    "request.escalated": "approval_escalated",
    "request.outcome": "tool_outcome",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One escalation step of a request: ``after_s`` seconds after it was made."""

    number: int
    after_s: float
    notify: tuple[str, ...]

    def due_at(self, request: ApprovalRequest) -> datetime:
        return request.created_at + timedelta(seconds=self.after_s)


@dataclass(frozen=True, slots=True)
class Route:
    #: the CEL source (None: always)
    when: str | bool
    notify: tuple[str, ...]
    #: ``(after_s, channels)`` pairs
    escalate: tuple[tuple[float, tuple[str, ...]], ...] = ()
    _program: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        when: str | bool,
        notify: Sequence[str],
        escalate: Sequence[tuple[float, Sequence[str]]] = (),
    ) -> Route:
        program = compile_cel(when) if isinstance(when, str) else None
        steps = tuple((after, tuple(channels)) for after, channels in escalate)
        return cls(when, tuple(notify), steps, program)

    def matches(self, request: ApprovalRequest) -> bool:
        if isinstance(self.when, bool):
            return self.when
        try:
            result = self._program.execute(variables(request))
        except Exception as exc:
            log.warning("signoff: route condition %r failed: %r; notifying", self.when, exc)
            return True
        if not isinstance(result, bool):
            log.warning("signoff: route condition %r gave %r; notifying", self.when, result)
            return True
        return result


def variables(request: ApprovalRequest) -> dict[str, Any]:
    """What a route's ``when`` sees."""
    return {
        "tool": request.tool,
        "risk": request.risk.value,
        "args": request.args,
        "run": request.run.model_dump(mode="json"),
        "policy": request.policy.model_dump(mode="json"),
    }


@dataclass(frozen=True, slots=True)
class Routing:
    """The configured channels' names and the routes to them."""

    channels: frozenset[str] = frozenset()
    routes: tuple[Route, ...] = ()

    @property
    def escalates(self) -> bool:
        return any(route.escalate for route in self.routes)

    def steps(self, request: ApprovalRequest) -> list[Step]:
        """The request's escalation steps, numbered in order of their delay."""
        found = [
            (after, notify)
            for route in self.routes
            if route.escalate and route.matches(request)
            for after, notify in route.escalate
        ]
        found.sort(key=lambda pair: pair[0])  # stable: route order breaks ties
        return [Step(n, after, notify) for n, (after, notify) in enumerate(found, 1)]

    def due_steps(self, request: ApprovalRequest, now: datetime) -> list[Step]:
        """Steps past their delay that have not fired yet."""
        fired = {e.step for e in request.escalations}
        return [
            s for s in self.steps(request) if s.number not in fired and s.due_at(request) <= now
        ]

    def next_step_at(self, request: ApprovalRequest) -> datetime | None:
        """When the request's next unfired step is due."""
        fired = {e.step for e in request.escalations}
        times = [s.due_at(request) for s in self.steps(request) if s.number not in fired]
        return min(times, default=None)

    def channels_for(self, request: ApprovalRequest) -> list[str]:
        """Every configured channel that hears about ``request``, in a stable order."""
        if not self.channels:
            return []
        named: list[str] = []
        for route in self.routes:
            if route.notify and route.matches(request):
                named.extend(route.notify)
        named.extend(request.channels)
        for escalation in request.escalations:
            named.extend(escalation.notify)
        # a name an agent proposed that the operator never configured reaches nobody
        return [name for name in dict.fromkeys(named) if name in self.channels]

    def deliveries(
        self, request: ApprovalRequest, audit: Iterable[AuditEntry]
    ) -> list[NewDelivery]:
        """The deliveries announcing ``audit``'s events about ``request`` (as they left it)."""
        if not self.channels:
            return []
        out: list[NewDelivery] = []
        targets: list[str] | None = None
        for entry in audit:
            notice = NOTICE_TYPES.get(entry.type)
            if notice is None or entry.request_id != request.id:
                continue
            if targets is None:
                targets = self.channels_for(request)
            step = entry.data.get("step") if notice == "approval_escalated" else None
            out.extend(
                NewDelivery(
                    id=new_id("dlv"),
                    request_id=request.id,
                    channel=channel,
                    type=notice,
                    created_at=entry.at,
                    step=step if isinstance(step, int) else None,
                )
                for channel in targets
            )
        return out

    def announced(self, apply: TransitionFn) -> TransitionFn:
        """``apply``, with the deliveries that announce its change (pure, like ``apply``):
        what the service hands the store, so they are written in the same transaction."""
        if not self.channels:
            return apply

        def with_deliveries(req: ApprovalRequest) -> Change:
            change = apply(req)
            if change.request is not None:
                change.deliveries = self.deliveries(change.request, change.audit)
            return change

        return with_deliveries
