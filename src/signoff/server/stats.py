"""``GET /v1/stats``: time to decision and approval rate per tool, per approver and per day.

This is the signal for approval fatigue: an approver whose decisions get faster while
their approval rate climbs towards 100 % is probably no longer reading. The numbers come
from the requests created in the period, read through the same listing the API serves.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from signoff._util import parse_duration
from signoff.errors import ConfigError, Forbidden, InvalidArguments
from signoff.models import ApprovalRequest, DecisionKind, Principal, Status
from signoff.server.bodies import (
    ApproverStats,
    DayStats,
    ShadowCall,
    ShadowStats,
    ShadowToolStats,
    StatsOut,
    Timing,
    ToolStats,
)
from signoff.service import ApprovalService
from signoff.shadow import ShadowRecord, shadow_records
from signoff.stores.base import ListQuery

#: how long an answer is reused for the same period
REUSE_S = 5.0
#: requests read at most for one answer; past it the answer says ``truncated``
MAX_REQUESTS = 50_000
MAX_PERIOD = timedelta(days=366)
PAGE = 200
#: shadow-mode calls listed one by one on the stats page
RECENT_SHADOW = 10


def parse_since(value: str | None, now: datetime) -> datetime:
    """The period's start: a duration back from now (``7d``, ``24h``) or an ISO-8601 time."""
    if value is None or value == "":
        return now - timedelta(days=7)
    try:
        seconds = parse_duration(value)
    except ConfigError:
        pass
    else:
        if seconds > MAX_PERIOD.total_seconds():
            raise InvalidArguments("since may reach back at most 366 days")
        return now - timedelta(seconds=seconds)
    try:
        since = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArguments(
            "since must be a duration such as '7d' or '24h', or an ISO-8601 time"
        ) from exc
    if since.tzinfo is None:
        raise InvalidArguments("since needs a time zone, e.g. 2026-01-01T00:00:00Z")
    if since > now or now - since > MAX_PERIOD:
        raise InvalidArguments("since must be in the past, at most 366 days ago")
    return since


async def collect(
    service: ApprovalService, principal: Principal, since: datetime
) -> tuple[list[ApprovalRequest], bool]:
    """The requests created since ``since`` (newest first), and whether there were more.
    The event loop gets a turn between pages: a long read never holds up other requests."""
    found: list[ApprovalRequest] = []
    cursor: str | None = None
    while True:
        await asyncio.sleep(0)
        page = await service.list_requests(ListQuery(limit=PAGE, cursor=cursor), principal)
        for request in page.items:
            if request.created_at < since:
                return found, False
            if len(found) >= MAX_REQUESTS:
                return found, True
            found.append(request)
        cursor = page.next_cursor
        if cursor is None:
            return found, False


async def stats(service: ApprovalService, principal: Principal, since_text: str | None) -> StatsOut:
    if principal.kind != "approver":
        raise Forbidden("statistics are for approvers")
    now = service.now()
    since = parse_since(since_text, now)
    requests, truncated = await collect(service, principal, since)
    shadow = await shadow_stats(service, since)
    # the arithmetic over tens of thousands of requests runs off the event loop
    out = await asyncio.to_thread(summarize, requests, since, now, truncated)
    return out.model_copy(update={"shadow": shadow})


async def shadow_stats(service: ApprovalService, since: datetime) -> ShadowStats:
    """Shadow-mode calls in the period, per tool and verdict, and the newest few."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    recent: deque[ShadowRecord] = deque(maxlen=RECENT_SHADOW)
    async for record in shadow_records(service.store, since):
        counts[record.tool][record.verdict] += 1
        recent.append(record)
    return ShadowStats(
        calls=sum(sum(c.values()) for c in counts.values()),
        tools=[
            ShadowToolStats(tool=tool, run=c["run"], ask=c["ask"], deny=c["deny"])
            for tool, c in sorted(counts.items())
        ],
        recent=[
            ShadowCall(
                tool=r.tool,
                verdict=r.verdict,
                min_role=r.min_role,
                quorum=r.quorum,
                reason=r.reason,
                agent_id=r.run.agent_id,
                at=r.at,
            )
            for r in reversed(recent)
        ],
    )


class StatsCache:
    """Statistics answers, computed at most once at a time per period and reused for
    ``reuse_s``: many dashboards (or one scripted caller) asking at once cost one run."""

    def __init__(self, reuse_s: float = REUSE_S) -> None:
        self.reuse_s = reuse_s
        self._answers: dict[str, tuple[float, asyncio.Future[StatsOut]]] = {}

    async def get(
        self, service: ApprovalService, principal: Principal, since_text: str | None
    ) -> StatsOut:
        service.require_reader(principal)
        if principal.kind != "approver":
            raise Forbidden("statistics are for approvers")
        key = (since_text or "").strip()
        now = time.monotonic()
        cached = self._answers.get(key)
        if cached is None or (cached[1].done() and now - cached[0] > self.reuse_s):
            future = asyncio.ensure_future(stats(service, principal, since_text))
            self._answers = {k: v for k, v in self._answers.items() if now - v[0] <= self.reuse_s}
            self._answers[key] = cached = (now, future)
            future.add_done_callback(self._forget_failures(key))
        return await asyncio.shield(cached[1])

    def _forget_failures(self, key: str) -> Callable[[asyncio.Future[StatsOut]], None]:
        def done(future: asyncio.Future[StatsOut]) -> None:
            if future.cancelled() or future.exception() is not None:
                self._answers.pop(key, None)

        return done


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-quantile, interpolating between the nearest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 3)


#: the statuses a person's decision settles, and that decision's kind
_SETTLED_BY = {
    Status.APPROVED: DecisionKind.APPROVE,
    Status.REJECTED: DecisionKind.REJECT,
    Status.RESPONDED: DecisionKind.RESPOND,
}


class _Tally:
    """Decisions and their times, for one tool, approver or day."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.approved = 0
        self.rejected = 0
        self.responded = 0

    def add(self, kind: DecisionKind, seconds: float) -> None:
        self.seconds.append(max(0.0, seconds))
        if kind is DecisionKind.APPROVE:
            self.approved += 1
        elif kind is DecisionKind.RESPOND:
            self.responded += 1  # answered in the tool's place: not a rejection
        else:
            self.rejected += 1

    def timing(self) -> Timing:
        decisions = self.approved + self.rejected + self.responded
        return Timing(
            decisions=decisions,
            approved=self.approved,
            responded=self.responded,
            approval_rate=round(self.approved / decisions, 4) if decisions else None,
            median_s=percentile(self.seconds, 0.5),
            p90_s=percentile(self.seconds, 0.9),
        )


def summarize(
    requests: Iterable[ApprovalRequest], since: datetime, until: datetime, truncated: bool
) -> StatsOut:
    overall = _Tally()
    tools: dict[str, _Tally] = defaultdict(_Tally)
    approvers: dict[str, _Tally] = defaultdict(_Tally)
    days: dict[str, _Tally] = defaultdict(_Tally)
    counts: dict[str, dict[Status, int]] = defaultdict(lambda: defaultdict(int))
    total = 0
    for request in requests:
        total += 1
        counts[request.tool][request.status] += 1
        tools.setdefault(request.tool, _Tally())
        settled = _SETTLED_BY.get(request.status)
        if settled is not None and request.decided_at:
            # the request's time to decision: from asking to the decision that settled it
            seconds = (request.decided_at - request.created_at).total_seconds()
            overall.add(settled, seconds)
            tools[request.tool].add(settled, seconds)
            days[request.decided_at.date().isoformat()].add(settled, seconds)
        for decision in request.decisions:
            # each approver's own decisions, quorum votes included
            approvers[decision.by].add(
                decision.decision, (decision.at - request.created_at).total_seconds()
            )
    return StatsOut(
        since=since,
        until=until,
        requests=total,
        overall=overall.timing(),
        tools=sorted(
            (
                ToolStats(
                    tool=name,
                    requests=sum(counts[name].values()),
                    rejected=tally.rejected,
                    expired=counts[name][Status.EXPIRED],
                    cancelled=counts[name][Status.CANCELLED],
                    **tally.timing().model_dump(),
                )
                for name, tally in tools.items()
            ),
            key=lambda t: (-t.requests, t.tool),
        ),
        approvers=sorted(
            (
                ApproverStats(approver=name, rejected=tally.rejected, **tally.timing().model_dump())
                for name, tally in approvers.items()
            ),
            key=lambda a: (-a.decisions, a.approver),
        ),
        days=[DayStats(day=day, **days[day].timing().model_dump()) for day in sorted(days)],
        truncated=truncated,
    )
