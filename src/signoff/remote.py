"""A Gate on a ``signoff serve`` elsewhere: ``Gate("http://host:8000", token=AGENT_JWT)``.

A waiting call holds no connection of its own: one event stream per gate (the client's
:meth:`~signoff.client.Client.follow` feed, narrowed to decisions, expiries and
cancellations of the agent's own requests) wakes every waiting call. The feed resumes after
a drop from the last event seen, and each (re)opening makes every waiting call read its
request again, so nothing missed while the connection was down is mistaken for "still
pending" for long, and nothing is ever mistaken for an approval.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Literal

from signoff import history
from signoff._util import stop_task
from signoff.approvals import Approvals
from signoff.client import Client
from signoff.errors import NotFound, SignoffError, Unauthorized, Unavailable, UsageError
from signoff.events import Event, EventType
from signoff.follow import Feed, OnOpen
from signoff.models import (
    ApprovalRequest,
    DecisionKind,
    Principal,
    RequestSpec,
    Run,
    RunRecord,
    Status,
    ToolCall,
)
from signoff.shadow import ShadowRecord
from signoff.types import JSONObject

#: after a request's expiry, how long a disconnected waiter keeps trying to learn its fate
GRACE_S = 60.0
#: decisions the stream keeps for calls that have not started waiting yet
KEEP_LATEST = 512
#: the events that can end a wait (or move a quorum along)
_DECISIVE = (EventType.DECIDED, EventType.EXPIRED, EventType.CANCELLED)


class _Decisions:
    """The gate's one event stream, and the calls waiting on it."""

    def __init__(self, client: Client) -> None:
        self.feed = client.follow(types=_DECISIVE, on_open=self._opened)
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._latest: OrderedDict[str, ApprovalRequest] = OrderedDict()
        self._open = asyncio.Event()
        self.error: SignoffError | None = None
        self._task = asyncio.create_task(self._pump(), name="signoff-remote-decisions")

    async def _pump(self) -> None:
        try:
            async with self.feed:
                async for event in self.feed:
                    self._heard(event)
        except SignoffError as exc:  # the token was refused: nobody can wait any more
            self.error = exc
            self._wake_all()

    async def _opened(self) -> None:
        self._open.set()
        self._wake_all()  # re-read everything: events may have passed while we were away

    def _heard(self, event: Event) -> None:
        # kept even when nobody waits yet: a decision can come through between a call's
        # submit and its wait (the stream carries only this agent's requests)
        self._latest.pop(event.request_id, None)
        self._latest[event.request_id] = event.snapshot
        if len(self._latest) > KEEP_LATEST:
            self._latest.popitem(last=False)
        for woken in self._waiting.get(event.request_id, ()):
            woken.set()

    def _wake_all(self) -> None:
        for waiters in self._waiting.values():
            for woken in waiters:
                woken.set()

    def latest(self, request_id: str) -> ApprovalRequest | None:
        return self._latest.pop(request_id, None)

    async def opened(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see bus.base.Listener.get
                await self._open.wait()
        except TimeoutError:
            return False
        return True

    def waiter(self, request_id: str) -> asyncio.Event:
        woken = asyncio.Event()
        self._waiting.setdefault(request_id, set()).add(woken)
        return woken

    def done_waiting(self, request_id: str, woken: asyncio.Event) -> None:
        waiters = self._waiting.get(request_id)
        if waiters is not None:
            waiters.discard(woken)
            if not waiters:
                del self._waiting[request_id]

    async def aclose(self) -> None:
        await stop_task(self._task)
        await self.feed.aclose()


class RemoteApprovals(Approvals):
    """A Gate's approvals on a server. The agent's identity is its token; the approver
    verbs use ``approver_token``."""

    def __init__(self, url: str, *, token: str | None, approver_token: str | None = None) -> None:
        self.url = url
        self._token = token
        self._approver_token = approver_token
        self._agent: Client | None = None
        self._approver: Client | None = None
        self._decisions: _Decisions | None = None
        #: per pending request: its expiry, and the stream's openings when it was created
        self._submitted: dict[str, tuple[float, int | None]] = {}

    async def start(self) -> None:
        if self._agent is None:
            self._agent = Client(self.url, self._token)

    async def aclose(self) -> None:
        if self._decisions is not None:
            await self._decisions.aclose()
            self._decisions = None
        for client in (self._agent, self._approver):
            if client is not None:
                await client.aclose()
        self._agent = self._approver = None

    @property
    def agent(self) -> Client:
        if self._agent is None:
            raise Unavailable("the gate is not started")
        if not self._token:
            raise Unauthorized("a remote gate needs an agent token: Gate(url, token=…)")
        return self._agent

    @property
    def approver(self) -> Client:
        if not self._approver_token:
            raise Unauthorized(
                "deciding through a remote gate needs an approver token: "
                "Gate(url, token=…, approver_token=…)"
            )
        if self._approver is None:
            self._approver = Client(self.url, self._approver_token)
        return self._approver

    def _reader(self) -> Client:
        return self.approver if self._approver_token else self.agent

    async def submit(self, spec: RequestSpec) -> ApprovalRequest:
        decisions = self._decisions
        feed = decisions.feed if decisions is not None else None
        openings = feed.openings if feed is not None and feed.is_open else None
        request = (await self.agent.submit(spec)).request
        if request.status is Status.PENDING:
            self._submitted[request.id] = (request.expires_at.timestamp(), openings)
        return request

    async def wait(self, request_id: str, run: Run) -> ApprovalRequest:
        """Wait for the decision, woken by the gate's one event stream.

        Subscribe, make sure the stream is open, then read the request: a decision that
        lands in between is seen either way. A lost connection (a server restart) is
        retried, never taken for a decision; if the server stays away past the request's
        expiry (plus a grace period), the wait fails as :class:`Unavailable` and the call
        does not run.
        """
        if self._decisions is None:
            self.agent  # noqa: B018 - raises when there is no agent token
            self._decisions = _Decisions(self.agent)
        decisions = self._decisions
        expires, openings = self._submitted.pop(request_id, (time.time() + 60.0, None))
        woken = decisions.waiter(request_id)
        try:
            await decisions.opened(timeout=10.0)
            # what the stream brought before this call waited (a decision made at once)
            request: ApprovalRequest | None = decisions.latest(request_id)
            feed = decisions.feed
            seen_all = openings is not None and feed.is_open and feed.openings == openings
            if request is None and not seen_all:
                # the stream opened after the request existed: what happened in between
                # is only in the server
                request = await self._read(request_id, expires)
            # otherwise every change to the request comes through the stream
            while request is None or request.status is Status.PENDING:
                if request is not None:
                    expires = request.expires_at.timestamp()
                # wake at expiry at the latest (the server expires it when read), and now
                # and then regardless, in case the stream is quietly stuck
                limit = min(max(expires - time.time(), 0.0) + 0.05, 30.0)
                try:
                    async with asyncio.timeout(limit):  # not wait_for (3.11 cancellation)
                        await woken.wait()
                except TimeoutError:
                    pushed = None
                else:
                    woken.clear()
                    pushed = decisions.latest(request_id)
                if decisions.error is not None:
                    raise decisions.error
                request = pushed if pushed is not None else await self._read(request_id, expires)
        finally:
            decisions.done_waiting(request_id, woken)
        return request

    async def _read(self, request_id: str, expires: float) -> ApprovalRequest:
        delay = 0.1
        while True:
            try:
                return await self.agent.get(request_id)
            except Unavailable:
                if time.time() > expires + GRACE_S:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def consume(self, request: ApprovalRequest) -> ApprovalRequest:
        return await self.agent.consume(request.id)

    async def record_outcome(
        self, request: ApprovalRequest, status: Literal["succeeded", "failed"], detail: Any
    ) -> ApprovalRequest:
        # the tool has run: try hard to say so, through a restart of the server
        delay = 0.2
        for attempt in range(8):
            try:
                return await self.agent.record_outcome(request.id, status, detail)
            except Unavailable:
                if attempt == 7:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def cancel(self, request_id: str, run: Run, reason: str | None) -> ApprovalRequest:
        return await self.agent.cancel(request_id, reason)

    async def get(self, request_id: str) -> ApprovalRequest:
        return await self._reader().get(request_id)

    async def pending(self) -> list[ApprovalRequest]:
        return await self._reader().pending()

    def follow(self, *, after: int | None = None, on_open: OnOpen | None = None) -> Feed[Event]:
        return self._reader().follow(after=after, on_open=on_open)

    async def save_run(self, record: RunRecord) -> RunRecord:
        return await self.agent.save_run(record)

    async def history(self, call: ToolCall, lookback_s: float) -> history.History:
        # the server answers for the token's agent, as of its own clock
        rows, now, start = await self.agent.history(lookback_s)
        return history.History(rows, run_id=call.run.run_id, now=now, since=start)

    async def record_execution(self, call: ToolCall) -> str:
        return await self.agent.record_execution(call.tool_name, call.args_json, call.run.run_id)

    async def record_shadow(self, record: ShadowRecord) -> None:
        await self.agent.record_shadow(record)

    async def void_execution(self, call: ToolCall, execution_id: str) -> None:
        await self.agent.void_execution(execution_id)

    async def get_run(self, run_id: str, agent_id: str | None = None) -> RunRecord | None:
        try:
            return await self.agent.get_run(run_id)
        except NotFound:
            return None

    async def decide(
        self,
        request_id: str,
        by: Principal | None,
        decision: DecisionKind,
        reason: str | None,
        modified_args: JSONObject | None,
        seen_digest: str | None = None,
        grant: JSONObject | None = None,
        response: Any = None,
    ) -> ApprovalRequest:
        if by is not None:
            raise UsageError(
                "a remote gate decides as its approver token's identity; do not pass by="
            )
        return await self.approver.decide(
            request_id,
            decision,
            reason=reason,
            modified_args=modified_args,
            seen_digest=seen_digest,
            grant=grant,
            response=response,
        )
