"""The escalator: fires each due ``escalate`` step of a request still pending.

It looks at the pending requests about once a second (on PostgreSQL, only the replica that
leads: the others find nothing to do anyway, since each step is a compare-and-set that
fires once) and applies each due step through the service's transition
(:meth:`~signoff.service.ApprovalService.escalate`): an audited ``request.escalated`` event
whose deliveries are written with it, like any other event's.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from signoff._util import stop_task
from signoff.models import Status
from signoff.service import ApprovalService
from signoff.stores.base import ListQuery

log = logging.getLogger(__name__)


class Escalator:
    def __init__(self, service: ApprovalService, *, poll_s: float = 1.0) -> None:
        self.service = service
        self.poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None and self.service.routing.escalates:
            self._task = asyncio.create_task(self._loop(), name="signoff-escalator")

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            delay = self.poll_s
            try:
                if await self.service.store.is_leader():
                    nxt = await self.fire_due()
                    if nxt is not None:
                        wait = nxt.timestamp() - self.service.now().timestamp()
                        delay = min(delay, max(wait, 0.01))
            except Exception:
                log.exception("signoff: the escalation sweep failed; retrying")
            await asyncio.sleep(delay)

    async def fire_due(self) -> datetime | None:
        """Fire every due step; return when the next unfired step falls due."""
        routing, store = self.service.routing, self.service.store
        nxt: datetime | None = None
        cursor: str | None = None
        while True:
            page = await store.list_requests(
                ListQuery(status=Status.PENDING.value, limit=500, cursor=cursor)
            )
            for request in page.items:
                now = self.service.now()
                if request.expires_at <= now:
                    continue
                for step in routing.due_steps(request, now):
                    request = await self.service.escalate(request.id, step.number, step.notify)
                at = routing.next_step_at(request) if request.status is Status.PENDING else None
                if at is not None and (nxt is None or at < nxt):
                    nxt = at
            cursor = page.next_cursor
            if cursor is None:
                return nxt
