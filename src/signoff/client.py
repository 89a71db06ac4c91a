"""The HTTP API as Python calls, for agents and tools in other processes.

:class:`Client` speaks the API (CONTRACT.md §3); every error comes back as the same
:class:`SignoffError` the service raises in process (a 403 is :class:`Forbidden`, a 409 is
:class:`Conflict` …), and a server that cannot be reached is :class:`Unavailable`.
:class:`RemoteBackend` puts it behind a Gate: ``Gate("http://host:8000", token=AGENT_JWT)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from signoff._util import stop_task
from signoff._version import __version__
from signoff.backend import Backend
from signoff.bus.base import Watch
from signoff.bus.memory import MemoryBus
from signoff.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InvalidArguments,
    MissingDependency,
    NotFound,
    PayloadTooLarge,
    SignoffError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UsageError,
    error_class,
)
from signoff.events import Event
from signoff.models import (
    ApprovalRequest,
    DecisionKind,
    Page,
    Principal,
    RequestSpec,
    Run,
    Status,
)
from signoff.runs import RunRecord
from signoff.types import JSONObject

log = logging.getLogger(__name__)

#: the longest single long-poll the API allows
WAIT_S = 60.0
#: after a request's expiry, how long a disconnected waiter keeps trying to learn its fate
GRACE_S = 60.0
#: decisions a remote gate's stream keeps for calls that have not started waiting yet
KEEP_LATEST = 512


def error_from(status: int, body: bytes, reason: str | None = None) -> SignoffError:
    """The SignoffError for an error response: the class named by the problem document's
    ``type`` (the error's ``code``), as the server raised it."""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}
    message = str(parsed.get("detail") or reason or f"HTTP {status}")
    if status >= 500:
        return Unavailable(f"the server failed ({status}): {message}")
    code = str(parsed.get("type", "")).rsplit("/", 1)[-1]
    kind = error_class(code) or _FALLBACK.get(status, SignoffError)
    if kind in (MissingDependency, TooManyRequests):
        kind = SignoffError  # their constructors take other arguments: keep the message
    extra = {k: v for k, v in parsed.items() if k not in _PROBLEM_FIELDS}
    return kind(message, status=status, **extra)


#: for an error response that is not one of ours (a proxy's, say): by status alone
_FALLBACK: dict[int, type[SignoffError]] = {
    400: InvalidArguments,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidArguments,
}
_PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event read from ``GET /v1/events``."""

    id: int
    type: str
    data: JSONObject

    @property
    def request(self) -> ApprovalRequest:
        return ApprovalRequest.model_validate(self.data["request"])


class Client:
    """One identity (a bearer token) talking to one server.

    Built on aiohttp rather than httpx: measured against this server, httpx's async pool
    fell to ~460 requests/s with 32 calls in flight (it scans every pooled connection on
    each request) while aiohttp kept ~13,000; an agent with many concurrent tool calls
    would spend its time in the client.
    """

    def __init__(self, url: str, token: str | None, *, user_agent: str | None = None) -> None:
        if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
            raise ConfigError(f"the server URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        headers = {"User-Agent": user_agent or f"signoff-python/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # created on first use, inside the event loop that will use it
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.url + "/",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=WAIT_S + 15),
                connector=aiohttp.TCPConnector(limit=100),
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> _Reply:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self.session.request(
                method, path.lstrip("/"), json=json_body, params=query
            ) as response:
                reply = _Reply(response.status, await response.read())
                reason = response.reason
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach the signoff server at {self.url}: {exc!r}") from exc
        if reply.status >= 400:
            raise error_from(reply.status, reply.body, reason)
        return reply

    # -- the agent's side -----------------------------------------------------------------

    async def create(self, spec: RequestSpec) -> tuple[ApprovalRequest, bool]:
        response = await self._call(
            "POST", "/v1/requests", json_body=spec.model_dump(mode="json", exclude_none=True)
        )
        return ApprovalRequest.model_validate_json(response.body), response.status == 201

    async def wait(self, request_id: str, timeout: float = WAIT_S) -> ApprovalRequest:
        response = await self._call(
            "GET", f"/v1/requests/{request_id}/wait", params={"timeout": timeout}
        )
        return ApprovalRequest.model_validate_json(response.body)

    async def consume(self, request_id: str) -> ApprovalRequest:
        response = await self._call("POST", f"/v1/requests/{request_id}/consume")
        return ApprovalRequest.model_validate_json(response.body)

    async def outcome(
        self, request_id: str, status: Literal["succeeded", "failed"], detail: Any = None
    ) -> ApprovalRequest:
        response = await self._call(
            "POST",
            f"/v1/requests/{request_id}/outcome",
            json_body={"status": status, "detail": detail},
        )
        return ApprovalRequest.model_validate_json(response.body)

    async def cancel(self, request_id: str, reason: str | None = None) -> ApprovalRequest:
        response = await self._call(
            "POST", f"/v1/requests/{request_id}/cancel", json_body={"reason": reason}
        )
        return ApprovalRequest.model_validate_json(response.body)

    # -- reading and deciding ---------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRequest:
        response = await self._call("GET", f"/v1/requests/{request_id}")
        return ApprovalRequest.model_validate_json(response.body)

    async def list_requests(
        self,
        *,
        status: str | None = None,
        tool: str | None = None,
        agent_id: str | None = None,
        risk: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page:
        response = await self._call(
            "GET",
            "/v1/requests",
            params={
                "status": status,
                "tool": tool,
                "agent_id": agent_id,
                "risk": risk,
                "limit": limit,
                "cursor": cursor,
            },
        )
        return Page.model_validate_json(response.body)

    async def decide(
        self,
        request_id: str,
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        modified_args: JSONObject | None = None,
        seen_digest: str | None = None,
    ) -> ApprovalRequest:
        """Decide; ``seen_digest`` is the ``args_digest`` of the request as you were shown it
        (a 409 :class:`Conflict` when the arguments have changed since)."""
        body: dict[str, Any] = {"decision": str(DecisionKind(decision))}
        if reason is not None:
            body["reason"] = reason
        if modified_args is not None:
            body["modified_args"] = modified_args
        if seen_digest is not None:
            body["seen_digest"] = seen_digest
        response = await self._call("POST", f"/v1/requests/{request_id}/decisions", json_body=body)
        return ApprovalRequest.model_validate_json(response.body)

    async def decide_many(
        self,
        ids: list[str],
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        seen_digests: Mapping[str, str] | None = None,
    ) -> list[JSONObject]:
        body: dict[str, Any] = {"ids": ids, "decision": str(DecisionKind(decision))}
        if reason is not None:
            body["reason"] = reason
        if seen_digests:
            body["seen_digests"] = dict(seen_digests)
        response = await self._call("POST", "/v1/decisions", json_body=body)
        results: list[JSONObject] = json.loads(response.body)["results"]
        return results

    async def save_run(self, record: RunRecord) -> RunRecord:
        response = await self._call(
            "PUT", f"/v1/runs/{record.run_id}", json_body=record.model_dump(mode="json")
        )
        return RunRecord.model_validate_json(response.body)

    async def get_run(self, run_id: str) -> RunRecord:
        response = await self._call("GET", f"/v1/runs/{run_id}")
        return RunRecord.model_validate_json(response.body)

    async def list_runs(self, *, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        response = await self._call("GET", "/v1/runs", params={"status": status, "limit": limit})
        return [RunRecord.model_validate(item) for item in json.loads(response.body)["items"]]

    async def audit(
        self, *, request_id: str | None = None, after: int = 0, limit: int = 1000
    ) -> JSONObject:
        response = await self._call(
            "GET", "/v1/audit", params={"request_id": request_id, "after": after, "limit": limit}
        )
        body: JSONObject = json.loads(response.body)
        return body

    async def verify_audit(self) -> JSONObject:
        body: JSONObject = json.loads((await self._call("GET", "/v1/audit/verify")).body)
        return body

    async def events(
        self,
        last_event_id: int | None = None,
        *,
        opened: asyncio.Event | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Live events as they happen (after ``last_event_id`` when given). Ends when the
        server ends the stream; raises :class:`Unavailable` when the connection fails.
        ``opened`` is set once the server has accepted the stream."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        try:
            async with self.session.get(
                "v1/events",
                params={"types": ",".join(types)} if types else None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
            ) as response:
                if response.status >= 400:
                    raise error_from(response.status, await response.read(), response.reason)
                if opened is not None:
                    opened.set()
                async for event in _parse_sse(_lines(response.content)):
                    yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"the event stream from {self.url} broke: {exc!r}") from exc


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    async for raw in content:
        yield raw.decode("utf-8").rstrip("\r\n")


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[StreamEvent]:
    event_id: str | None = None
    event_type = "message"
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data and event_id is not None:
                yield StreamEvent(int(event_id), event_type, json.loads("\n".join(data)))
            event_id, event_type, data = None, "message", []
        elif line.startswith(":"):
            continue  # a heartbeat
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                event_id = value
            elif name == "event":
                event_type = value
            elif name == "data":
                data.append(value)


#: the events that can end a wait (or move a quorum along)
_DECISIVE = ("request.decided", "request.expired", "request.cancelled")


class _Decisions:
    """One event stream that wakes all of a remote gate's waiting calls.

    A waiting call holds no connection of its own: it watches its request id here. The
    stream resumes after a drop from the last event seen (``Last-Event-ID``), and every
    reconnect wakes every waiter to read its request again, so nothing missed while the
    connection was down can be mistaken for "still pending" for long, and nothing is ever
    mistaken for an approval.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._bus = MemoryBus()
        self._latest: dict[str, ApprovalRequest] = {}
        self._task: asyncio.Task[None] | None = None
        self._open = asyncio.Event()
        self._last_id: int | None = None
        self.error: SignoffError | None = None
        #: counts the stream's openings: the same value before and after a call means the
        #: stream was open, without a break, all along
        self.epoch = 0

    def watch(self, request_id: str) -> Watch:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="signoff-remote-decisions")
        return self._bus.watch(request_id)

    def latest(self, request_id: str) -> ApprovalRequest | None:
        return self._latest.pop(request_id, None)

    async def opened(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._open.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _follow(self) -> None:
        delay = 0.1
        while True:
            opened = asyncio.Event()
            waker = asyncio.create_task(self._wake_all_when(opened))
            try:
                async for event in self._client.events(
                    self._last_id, opened=opened, types=_DECISIVE
                ):
                    self._last_id = event.id
                    delay = 0.1
                    request_id = event.data.get("request", {}).get("id")
                    if request_id is None:
                        continue
                    # kept even when nobody watches yet: a decision can come through
                    # between a call's submit and its wait (the stream carries only this
                    # agent's requests, and only the last few hundred are kept)
                    self._latest.pop(request_id, None)
                    self._latest[request_id] = event.request
                    if len(self._latest) > KEEP_LATEST:
                        del self._latest[next(iter(self._latest))]
                    if self._bus.is_watched(request_id):
                        self._bus.deliver(_as_event(event))
            except Unavailable:
                pass
            except SignoffError as exc:  # the token was refused: nobody can wait any more
                self.error = exc
                self._bus.wake_all()
                return
            finally:
                waker.cancel()
                self._open.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def _wake_all_when(self, opened: asyncio.Event) -> None:
        await opened.wait()
        self.epoch += 1
        self._open.set()
        self._bus.wake_all()  # re-read everything: events may have passed while we were away


def _as_event(event: StreamEvent) -> Event:
    return Event(
        event.id, event.type, event.request.id, str(event.data.get("at", "")), event.request
    )


class RemoteBackend(Backend):
    """A Gate's backend on a ``signoff serve`` elsewhere. The agent's identity is its token;
    the approver verbs use ``approver_token``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        approver_token: str | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self._approver_token = approver_token
        self._agent: Client | None = None
        self._approver: Client | None = None
        self._decisions: _Decisions | None = None
        #: per pending request: its expiry, and the stream's epoch when it was created
        self._submitted: dict[str, tuple[float, int | None]] = {}

    async def start(self) -> None:
        if self._agent is None:
            self._agent = Client(self.url, self._token)

    async def close(self) -> None:
        if self._decisions is not None:
            await self._decisions.close()
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

    async def submit(self, spec: RequestSpec) -> ApprovalRequest:
        decisions = self._decisions
        epoch = decisions.epoch if decisions is not None and decisions.is_open else None
        request, _ = await self.agent.create(spec)
        if request.status is Status.PENDING:
            self._submitted[request.id] = (request.expires_at.timestamp(), epoch)
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
            self._decisions = _Decisions(self.agent)
        decisions = self._decisions
        expires, epoch = self._submitted.pop(request_id, (time.time() + WAIT_S, None))
        with decisions.watch(request_id) as watch:
            await decisions.opened(timeout=10.0)
            # what the stream brought before this call watched (a decision made at once)
            request: ApprovalRequest | None = decisions.latest(request_id)
            seen_all = epoch is not None and decisions.is_open and decisions.epoch == epoch
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
                woke = await watch.changed(min(max(expires - time.time(), 0.0) + 0.05, 30.0))
                if decisions.error is not None:
                    raise decisions.error
                pushed = decisions.latest(request_id) if woke else None
                request = pushed if pushed is not None else await self._read(request_id, expires)
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

    async def save_run(self, record: RunRecord) -> RunRecord:
        return await self.agent.save_run(record)

    async def get_run(self, run_id: str, agent_id: str | None = None) -> RunRecord | None:
        try:
            return await self.agent.get_run(run_id)
        except NotFound:
            return None

    async def record_outcome(
        self, request: ApprovalRequest, status: Literal["succeeded", "failed"], detail: Any
    ) -> ApprovalRequest:
        # the tool has run: try hard to say so, through a restart of the server
        delay = 0.2
        for attempt in range(8):
            try:
                return await self.agent.outcome(request.id, status, detail)
            except Unavailable:
                if attempt == 7:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def cancel(self, request_id: str, run: Run, reason: str | None) -> ApprovalRequest:
        return await self.agent.cancel(request_id, reason)

    async def get(self, request_id: str) -> ApprovalRequest:
        client = self.approver if self._approver_token else self.agent
        return await client.get(request_id)

    async def pending(self) -> list[ApprovalRequest]:
        client = self.approver if self._approver_token else self.agent
        found: list[ApprovalRequest] = []
        cursor: str | None = None
        while True:
            page = await client.list_requests(status=Status.PENDING.value, limit=200, cursor=cursor)
            found.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return found

    async def decide(
        self,
        request_id: str,
        by: Principal | None,
        decision: DecisionKind,
        reason: str | None,
        modified_args: JSONObject | None,
        seen_digest: str | None = None,
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
        )
