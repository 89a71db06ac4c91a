"""The HTTP API as Python calls, for agents, tools and approvers in other processes.

:class:`Client` speaks the API (docs/api.md) with the approval service's own verbs
(``submit``, ``wait``, ``decide``, ``record_outcome`` …) and typed returns. Every error
comes back as the :class:`SignoffError` the server raised, looked up by the problem
document's code (one table, on both sides); a server that cannot be reached is
:class:`Unavailable`. ``client.follow()`` is the live event stream as a
:func:`signoff.follow.follow` feed: resumed with ``Last-Event-ID`` after a drop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from signoff._util import failure_text
from signoff._version import __version__
from signoff.audit import AuditEvent, Checkpoint
from signoff.audit_check import Verification
from signoff.errors import (
    ConfigError,
    Forbidden,
    InvalidArguments,
    SignoffError,
    Unauthorized,
    Unavailable,
)
from signoff.events import Event
from signoff.follow import Feed, Interrupted, OnOpen, follow
from signoff.history import HistoryRow
from signoff.models import ApprovalRequest, DecisionKind, Page, RequestSpec, RunRecord
from signoff.problems import error_from
from signoff.shadow import ShadowRecord
from signoff.sse_stream import SseStream
from signoff.types import JSONObject

#: the longest single long-poll the API allows
WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Submitted:
    """What ``submit`` gives: the request, and whether this call created it."""

    request: ApprovalRequest
    created: bool


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """One request's result in a batch decision: the request, or why not."""

    id: str
    status: int
    request: ApprovalRequest | None = None
    error: SignoffError | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    #: pass as ``after`` for the next page; None at the end
    next_after: int | None


class Client:
    """One identity (a bearer token) talking to one server.

    Built on aiohttp rather than httpx: with 32 calls in flight httpx's async pool fell to
    ~460 requests/s here (it scans every pooled connection per request), aiohttp ~13,000.
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
            raise Unavailable(
                f"cannot reach the signoff server at {self.url}: {failure_text(exc)}"
            ) from exc
        if reply.status >= 400:
            raise error_from(reply.status, reply.body, reason)
        return reply

    async def _request(self, method: str, path: str, **kwargs: Any) -> ApprovalRequest:
        reply = await self._call(method, path, **kwargs)
        return ApprovalRequest.model_validate_json(reply.body)

    # -- the agent's side -----------------------------------------------------------------

    async def submit(self, spec: RequestSpec) -> Submitted:
        reply = await self._call(
            "POST", "/v1/requests", json_body=spec.model_dump(mode="json", exclude_none=True)
        )
        return Submitted(ApprovalRequest.model_validate_json(reply.body), reply.status == 201)

    async def wait(self, request_id: str, timeout: float = WAIT_S) -> ApprovalRequest:
        return await self._request(
            "GET", f"/v1/requests/{request_id}/wait", params={"timeout": timeout}
        )

    async def consume(self, request_id: str) -> ApprovalRequest:
        return await self._request("POST", f"/v1/requests/{request_id}/consume")

    async def record_outcome(
        self, request_id: str, status: Literal["succeeded", "failed"], detail: Any = None
    ) -> ApprovalRequest:
        body = {"status": status, "detail": detail}
        return await self._request("POST", f"/v1/requests/{request_id}/outcome", json_body=body)

    async def cancel(self, request_id: str, reason: str | None = None) -> ApprovalRequest:
        body = {"reason": reason}
        return await self._request("POST", f"/v1/requests/{request_id}/cancel", json_body=body)

    # -- reading and deciding ---------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRequest:
        return await self._request("GET", f"/v1/requests/{request_id}")

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
        params = {
            "status": status,
            "tool": tool,
            "agent_id": agent_id,
            "risk": risk,
            "limit": limit,
            "cursor": cursor,
        }
        reply = await self._call("GET", "/v1/requests", params=params)
        return Page.model_validate_json(reply.body)

    async def pending(self) -> list[ApprovalRequest]:
        """Every pending request (all pages), newest first."""
        found: list[ApprovalRequest] = []
        cursor: str | None = None
        while True:
            page = await self.list_requests(status="pending", limit=200, cursor=cursor)
            found.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return found

    async def decide(
        self,
        request_id: str,
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        modified_args: JSONObject | None = None,
        seen_digest: str | None = None,
        grant: JSONObject | None = None,
        response: Any = None,
    ) -> ApprovalRequest:
        """Decide; ``seen_digest`` is the ``args_digest`` of the request as you were shown it
        (a 409 :class:`Conflict` when the arguments have changed since); ``grant``
        (``{"ttl": "1h", "scope": "tool"}``) makes an approval a standing grant too;
        ``response`` is a ``respond`` decision's answer (what the model receives in the
        tool's place)."""
        body: dict[str, Any] = {"decision": str(DecisionKind(decision))}
        given = {"reason": reason, "modified_args": modified_args, "seen_digest": seen_digest}
        given |= {"grant": grant, "response": response}
        body.update({k: v for k, v in given.items() if v is not None})
        return await self._request("POST", f"/v1/requests/{request_id}/decisions", json_body=body)

    async def decide_many(
        self,
        ids: Sequence[str],
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        seen_digests: Mapping[str, str] | None = None,
        grant: JSONObject | None = None,
        response: Any = None,
    ) -> list[DecisionResult]:
        """Decide several requests the same way; each succeeds or fails on its own.
        ``grant`` and ``response`` as for :meth:`decide`."""
        body: dict[str, Any] = {"ids": list(ids), "decision": str(DecisionKind(decision))}
        given = {"reason": reason, "grant": grant, "response": response}
        body.update({k: v for k, v in given.items() if v is not None})
        if seen_digests:
            body["seen_digests"] = dict(seen_digests)
        reply = await self._call("POST", "/v1/decisions", json_body=body)
        results = []
        for item in json.loads(reply.body)["results"]:
            if item["status"] == 200:
                request = ApprovalRequest.model_validate(item["request"])
                results.append(DecisionResult(item["id"], 200, request=request))
            else:
                problem = json.dumps(item.get("problem") or {}).encode()
                error = error_from(item["status"], problem)
                results.append(DecisionResult(item["id"], item["status"], error=error))
        return results

    # -- durable runs ---------------------------------------------------------------------

    async def save_run(self, record: RunRecord) -> RunRecord:
        reply = await self._call(
            "PUT", f"/v1/runs/{record.run_id}", json_body=record.model_dump(mode="json")
        )
        return RunRecord.model_validate_json(reply.body)

    async def get_run(self, run_id: str) -> RunRecord:
        reply = await self._call("GET", f"/v1/runs/{run_id}")
        return RunRecord.model_validate_json(reply.body)

    async def list_runs(self, *, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        reply = await self._call("GET", "/v1/runs", params={"status": status, "limit": limit})
        return [RunRecord.model_validate(item) for item in json.loads(reply.body)["items"]]

    async def history(self, lookback_s: float) -> tuple[list[HistoryRow], datetime, datetime]:
        """The calling agent's calls in the last ``lookback_s`` seconds: (rows, the server's
        now, since)."""
        reply = await self._call("GET", "/v1/history", params={"lookback_s": lookback_s})
        body = json.loads(reply.body)
        rows = [
            HistoryRow(
                tool=i["tool"],
                run_id=i["run_id"],
                at=datetime.fromisoformat(i["at"]),
                args=i["args"],
                in_flight=i["in_flight"],
                execution_id=i.get("execution_id"),
            )
            for i in body["items"]
        ]
        return rows, datetime.fromisoformat(body["now"]), datetime.fromisoformat(body["since"])

    async def record_execution(self, tool: str, args: JSONObject, run_id: str | None) -> str:
        """Add a call to the calling agent's ledger (``POST /v1/executions``); its id."""
        body = {"tool": tool, "args": args, "run_id": run_id}
        reply = await self._call("POST", "/v1/executions", json_body=body)
        return str(json.loads(reply.body)["id"])

    async def record_shadow(self, record: ShadowRecord) -> None:
        """Audit a shadow-mode verdict on the server (``POST /v1/shadow-verdicts``): the
        agent is the token's subject, the time the server's."""
        body: dict[str, Any] = {
            "tool": record.tool,
            "verdict": record.verdict,
            "args": record.args,
            "run_id": record.run.run_id,
            "session_id": record.run.session_id,
            "tool_call_id": record.tool_call_id,
            "min_role": record.min_role,
            "quorum": record.quorum,
            "reason": record.reason,
            "note": record.note,
        }
        await self._call("POST", "/v1/shadow-verdicts", json_body=body)

    async def void_execution(self, execution_id: str) -> None:
        """Withdraw one of the calling agent's ledger rows (``DELETE /v1/executions/{id}``)."""
        await self._call("DELETE", f"/v1/executions/{quote(execution_id, safe='')}")

    async def deliveries(self, **filters: Any) -> dict[str, Any]:
        """``GET /v1/deliveries`` (status, channel, request_id, before, limit): one page."""
        return dict(json.loads((await self._call("GET", "/v1/deliveries", params=filters)).body))

    async def grants(self, **filters: Any) -> list[dict[str, Any]]:
        """``GET /v1/grants`` (agent, tool, active, limit): the standing grants."""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
        reply = await self._call("GET", "/v1/grants", params=params)
        return list(json.loads(reply.body)["items"])

    async def revoke_grant(self, grant_id: str) -> dict[str, Any]:
        """``DELETE /v1/grants/{id}``: revoked at once, on every replica."""
        reply = await self._call("DELETE", f"/v1/grants/{quote(grant_id, safe='')}")
        return dict(json.loads(reply.body))

    async def retry_delivery(self, delivery_id: str) -> dict[str, Any]:
        path = f"/v1/deliveries/{quote(delivery_id, safe='')}/retry"
        return dict(json.loads((await self._call("POST", path)).body))

    # -- the audit log ----------------------------------------------------------------------

    async def audit_events(
        self, *, request_id: str | None = None, after: int = 0, limit: int = 1000
    ) -> AuditPage:
        reply = await self._call(
            "GET", "/v1/audit", params={"request_id": request_id, "after": after, "limit": limit}
        )
        page = json.loads(reply.body)
        # each record is the canonical JSON of the event's own fields, as it was hashed
        events = [AuditEvent.from_dict(item) for item in page["items"]]
        return AuditPage(events, page["next_after"])

    async def verify_audit(self, *, against: Checkpoint | None = None) -> Verification:
        if against is None:
            reply = await self._call("GET", "/v1/audit/verify")
        else:
            body = {"against": against.to_dict()}
            reply = await self._call("POST", "/v1/audit/verify", json_body=body)
        return _verification(json.loads(reply.body))

    async def checkpoints(self, *, after: int = 0, limit: int = 1000) -> list[Checkpoint]:
        """Every signed checkpoint after ``after`` (read page by page)."""
        found: list[Checkpoint] = []
        while True:
            reply = await self._call(
                "GET", "/v1/audit/checkpoints", params={"after": after, "limit": limit}
            )
            page = json.loads(reply.body)
            found.extend(Checkpoint.from_dict(item) for item in page["items"])
            if page["next_after"] is None:
                return found
            after = page["next_after"]

    async def me(self) -> dict[str, Any]:
        """Who this client's token speaks for (``GET /v1/me``)."""
        me: dict[str, Any] = json.loads((await self._call("GET", "/v1/me")).body)
        return me

    async def audit_keys(self) -> dict[str, Any]:
        """The public keys (JWKS) the server's checkpoints verify with."""
        keys: dict[str, Any] = json.loads((await self._call("GET", "/v1/audit/keys")).body)
        return keys

    # -- live events ------------------------------------------------------------------------

    def follow(
        self,
        *,
        after: int | None = None,
        types: Sequence[str] | None = None,
        on_open: OnOpen | None = None,
    ) -> Feed[Event]:
        """The live events (of ``types`` when given) after ``after`` (None: from when the
        stream opens), resumed with ``Last-Event-ID`` after a drop. A refused token ends it
        (:class:`Unauthorized`, :class:`Forbidden`)."""
        return follow(
            ServerEvents(self, types),
            after=after,
            on_open=on_open,
            fatal=(Unauthorized, Forbidden, InvalidArguments),
        )


class ServerEvents:
    """``GET /v1/events`` as a :mod:`signoff.follow` source."""

    def __init__(self, client: Client, types: Sequence[str] | None = None) -> None:
        self.client = client
        self.types = list(types) if types else None

    async def open(self, after: int | None) -> SseStream:
        headers = {"Accept": "text/event-stream"}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        try:
            response = await self.client.session.get(
                "v1/events",
                params={"types": ",".join(self.types)} if self.types else None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Interrupted(f"cannot open the event stream: {failure_text(exc)}") from exc
        if response.status >= 400:
            body = await response.read()
            response.release()
            error = error_from(response.status, body, response.reason)
            if isinstance(error, Unavailable):
                raise Interrupted(error.message) from error
            raise error
        return SseStream(response)


def _verification(body: dict[str, Any]) -> Verification:
    return Verification(
        ok=body["ok"],
        events=body["events"],
        head=body["head"],
        sealed=body.get("sealed", 0),
        unsealed=body.get("unsealed", 0),
        checkpoint=body.get("checkpoint"),
        first_bad=body.get("first_bad"),
        mismatched=body.get("mismatched", 0),
        mismatches=body.get("mismatches") or [],
    )
