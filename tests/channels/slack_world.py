"""A running Slack channel for tests: a real approval service (memory store), the fake
Slack Web API, the channel's interactions endpoint on uvicorn, and Slack's side of a click
(signed ``block_actions`` and ``view_submission`` posts, built from the message Slack holds).

Also :class:`Relay`: a few lines standing in for the outbox (which delivers the service's
events to channels, keeping each channel's receipts per request), so that an agent's call
reaches Slack and a decision made anywhere reaches the message.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette

from signoff._util import to_datetime
from signoff.audit import AuditEntry
from signoff.auth import Verifier
from signoff.channels.base import ChannelContext, Notice, NoticeType
from signoff.channels.slack import SlackChannel
from signoff.config import AuthConfig
from signoff.connect import connect
from signoff.events import EventType
from signoff.models import ApprovalRequest, Principal
from signoff.service import ApprovalService
from signoff.stores.base import Store
from signoff.types import JSONObject
from tests.channels.fake_slack import TOKEN, FakeSlack, LocalServer

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0TEAM"
APP = "A0APP"
NAME = "approvals"
#: Slack user → who they are in signoff (the requests in these tests come from "support-bot")
USERS = {
    "U0ALICE": {"sub": "alice", "role": "publisher"},
    "U0ADA": {"sub": "ada", "role": "admin"},
    "U0ERIN": {"sub": "erin", "role": "editor"},
    "U0SUPPORT": {"sub": "support-bot", "role": "admin"},
}
STRANGER = "U0STRANGER"


def settings(api_url: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "type": "slack",
        "channel": "#agent-approvals",
        "token": TOKEN,
        "signing_secret": SECRET,
        "api_url": api_url,
        "users": USERS,
        "team_id": TEAM,
        "api_app_id": APP,
    }
    values.update(overrides)
    return values


def make_context(service: ApprovalService, store: Store, clock: Callable[[], float]) -> Any:
    reader = Principal(sub="system", role=service.roles.highest)
    verifier = Verifier(b"k" * 32, AuthConfig(), service.roles)

    async def get_request(request_id: str) -> ApprovalRequest:
        return await service.get(request_id, reader)

    async def verify_token(token: str) -> Principal:
        return verifier.verify(token)

    async def refused(request_id: str | None, what: str, why: str) -> None:
        actor: JSONObject = {"sub": f"channel:{NAME}", "kind": "channel", "role": None}
        data: JSONObject = {"attempted": what, "error": "forbidden", "message": why}
        await store.append_audit(
            AuditEntry("decision.refused", request_id, actor, service.now(), "slack", data)
        )

    return ChannelContext(
        decide=service.decide,
        get_request=get_request,
        spend=store.spend,
        verify_token=verify_token,
        refused=refused,
        key=b"k" * 32,
        public_url="https://signoff.example.com",
        roles=service.roles,
        now=clock,
    )


def notice(
    kind: NoticeType,
    request: ApprovalRequest,
    receipts: list[JSONObject] | None = None,
    *,
    step: int | None = None,
) -> Notice:
    return Notice(
        delivery_id=secrets.token_hex(8),
        channel=NAME,
        type=kind,
        request=request,
        at=to_datetime(time.time()),
        step=step,
        receipts=tuple(receipts or ()),
    )


@asynccontextmanager
async def running(clock: Callable[[], float], **overrides: Any) -> AsyncIterator[SlackWorld]:
    """A memory-backed service (on ``clock``) and the Slack channel in front of it."""
    backends = connect("memory://")
    service = ApprovalService(backends.store, backends.bus, clock=clock, sweep=False)
    await service.start()
    try:
        async with SlackWorld(service, backends.store, clock, **overrides) as world:
            yield world
    finally:
        await service.aclose()


class SlackWorld:
    """The channel, served, against the fake Slack; ``clock`` is the channel's clock."""

    def __init__(
        self,
        service: ApprovalService,
        store: Store,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> None:
        self.service, self.store, self.clock = service, store, clock
        self.overrides = overrides
        self.slack = FakeSlack()
        self.context = make_context(service, store, clock)
        self.channel: SlackChannel | None = None
        self._server: LocalServer | None = None
        self.http = httpx.AsyncClient(timeout=10)

    async def __aenter__(self) -> SlackWorld:
        await self.slack.start()
        await self.restart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()
        await self.slack.close()
        await self.http.aclose()

    async def restart(self) -> SlackChannel:
        """A new channel instance and server (a deploy, or another replica), same config."""
        await self._stop()
        self.channel = SlackChannel(NAME, settings(self.slack.api_url, **self.overrides))
        await self.channel.start(self.context)
        self._server = LocalServer(Starlette(routes=self.channel.routes()))
        await self._server.start()
        return self.channel

    async def _stop(self) -> None:
        if self.channel is not None:
            await self.channel.aclose()
        if self._server is not None:
            await self._server.close()

    @property
    def live(self) -> SlackChannel:
        assert self.channel is not None
        return self.channel

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self._server.url}/channels/slack/{NAME}/interactions"

    async def post_request(self, request: ApprovalRequest) -> JSONObject:
        receipt = await self.live.send(notice(NoticeType.REQUEST, request))
        assert receipt is not None
        return receipt

    # -- Slack's side ---------------------------------------------------------------------

    def signed(
        self, payload: JSONObject, *, timestamp: int | None = None, secret: str = SECRET
    ) -> tuple[bytes, dict[str, str]]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        assert signature is not None
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": ts,
            "x-slack-signature": signature,
        }
        return body, headers

    async def send(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(self.url, content=body, headers=headers)

    async def interact(self, payload: JSONObject, **signing: Any) -> httpx.Response:
        """Post a signed interaction, and wait for the work it started."""
        response = await self.send(*self.signed(payload, **signing))
        await self.settle()
        return response

    async def settle(self) -> None:
        await self.live.idle()

    def click(self, user: str, receipt: JSONObject, action_id: str) -> JSONObject:
        """The ``block_actions`` payload Slack sends when ``user`` clicks a button of the
        message as Slack holds it now."""
        message = self.slack.message(receipt)
        for block in message.blocks:
            for element in block.get("elements", []) if block["type"] == "actions" else []:
                if element["action_id"] == action_id:
                    action = {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": block["block_id"],
                        "value": element["value"],
                        "action_ts": f"{time.time():.6f}",
                    }
                    return self._payload(user, message.channel, message.ts, action, message.blocks)
        raise AssertionError(f"the message has no {action_id} button (buttons gone?)")

    def _payload(
        self, user: str, channel: str, ts: str, action: JSONObject, blocks: list[Any]
    ) -> JSONObject:
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "api_app_id": APP,
            "token": "legacy-verification-token-ignored",
            "team": {"id": TEAM, "domain": "example"},
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "channel": {"id": channel, "name": "agent-approvals"},
            "message": {"type": "message", "ts": ts, "blocks": blocks},
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
            "response_url": "http://127.0.0.1:9/never-used",
            "actions": [action],
        }

    def opened_view(self) -> JSONObject:
        """The modal the channel last opened."""
        views = self.slack.called("views.open")
        assert views, "no modal was opened"
        view: JSONObject = views[-1]["view"]
        return view

    def submit(self, user: str, view: JSONObject, values: JSONObject) -> JSONObject:
        """The ``view_submission`` payload of ``view`` with ``values`` (``state.values``)."""
        return {
            "type": "view_submission",
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": APP,
            "team": {"id": TEAM},
            "view": {
                "id": "V000001",
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "blocks": view["blocks"],
                "state": {"values": values},
            },
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
        }


def text_of(blocks: Any) -> str:
    """All the text in some blocks, for assertions."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "text" and isinstance(item, str):
                    out.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(blocks)
    return "\n".join(out)


def buttons(blocks: list[JSONObject]) -> list[str]:
    return [
        element["action_id"]
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


class Relay:
    """Stands in for the outbox: the service's events → notices for one channel, in order,
    with the receipts this channel returned for the earlier notices about each request."""

    TYPES: ClassVar[dict[str, NoticeType]] = {
        EventType.CREATED: NoticeType.REQUEST,
        EventType.DECIDED: NoticeType.DECIDED,
        EventType.EXPIRED: NoticeType.EXPIRED,
        EventType.CANCELLED: NoticeType.CANCELLED,
        EventType.OUTCOME: NoticeType.OUTCOME,
    }

    def __init__(self, service: ApprovalService, world: SlackWorld) -> None:
        self.service, self.world = service, world
        self.receipts: dict[str, list[JSONObject]] = {}
        self.delivered: list[tuple[NoticeType, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Relay:
        feed = self.service.follow()
        await feed.__aenter__()
        self._task = asyncio.create_task(self._run(feed))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, feed: Any) -> None:
        try:
            async for event in feed:
                kind = self.TYPES.get(event.type)
                if kind is None:
                    continue
                earlier = self.receipts.setdefault(event.request_id, [])
                receipt = await self.world.live.send(notice(kind, event.snapshot, earlier))
                if receipt is not None:
                    earlier.append(receipt)
                self.delivered.append((kind, event.request_id))
        finally:
            await feed.aclose()

    async def until(self, kind: NoticeType, request_id: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while (kind, request_id) not in self.delivered:
            assert time.monotonic() < deadline, f"{kind} for {request_id} was not delivered"
            await asyncio.sleep(0.01)
