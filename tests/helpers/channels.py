"""Channels under test: a real approval service behind a real ChannelContext, and a real
HTTP server on loopback that plays the webhook receiver and serves the channel's routes."""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signoff._util import new_id
from signoff.audit import AuditEntry, AuditEvent
from signoff.auth import Issuer, Verifier
from signoff.channels.base import ChannelContext, Notice, NoticeType
from signoff.config import Config
from signoff.connect import connect
from signoff.models import ApprovalRequest, Principal
from signoff.service import ApprovalService
from tests.conftest import refund_spec

KEY = b"channels-test-key-long-enough-for-hs256-signing!"
AGENT = Principal(sub="support-bot", kind="agent")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def whsec() -> str:
    """A fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def unique(prefix: str) -> str:
    """A topic name no other test (or person on this machine) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Harness:
    """The approval service and the context a channel gets from the server."""

    service: ApprovalService
    context: ChannelContext
    issuer: Issuer
    public_url: str
    port: int
    #: seconds added to the channel's clock (a callback arriving late)
    offset: dict[str, float]

    async def submit(self, **overrides: Any) -> ApprovalRequest:
        created = await self.service.submit(refund_spec(**overrides), AGENT)
        return created.request

    def notice(
        self, request: ApprovalRequest, type_: NoticeType = NoticeType.REQUEST, **kw: Any
    ) -> Notice:
        return Notice(
            delivery_id=kw.pop("delivery_id", new_id("dlv")),
            channel=kw.pop("channel", "test"),
            type=type_,
            request=request,
            at=self.service.now(),
            **kw,
        )

    @staticmethod
    def approver(sub: str = "ada", role: str = "admin") -> Principal:
        return Principal(sub=sub, role=role)

    def token(self, sub: str = "paul", role: str = "publisher", **kw: Any) -> str:
        return self.issuer.token(sub, kind="approver", role=role, **kw)

    async def get(self, request_id: str) -> ApprovalRequest:
        return await self.context.get_request(request_id)

    async def audit(self, request_id: str | None = None) -> list[AuditEvent]:
        return await self.service.store.audit_events(request_id=request_id)

    async def refusals(self, request_id: str | None = None) -> list[AuditEvent]:
        return [e for e in await self.audit(request_id) if e.type == "decision.refused"]


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    backends = connect("memory://")
    config = Config()
    service = ApprovalService(backends.store, backends.bus, config=config)
    await service.start()
    verifier = Verifier(KEY, config.auth, config.roles)
    port = free_port()
    offset = {"s": 0.0}

    async def verify_token(token: str) -> Principal:
        return verifier.verify(token)

    async def refused(request_id: str | None, attempted: str, why: str) -> None:
        # what the server's context does (the service's own refusals have this shape)
        await backends.store.append_audit(
            AuditEntry(
                "decision.refused",
                request_id,
                {"sub": "channel", "kind": "approver", "role": None},
                service.now(),
                "channel",
                {"attempted": attempted, "error": "refused", "message": why},
            )
        )

    async def get_request(request_id: str) -> ApprovalRequest:
        return await service.get(request_id, Principal(sub="system", role=service.roles.highest))

    context = ChannelContext(
        decide=service.decide,
        get_request=get_request,
        spend=backends.store.spend,
        verify_token=verify_token,
        refused=refused,
        key=KEY,
        public_url=f"http://127.0.0.1:{port}",
        roles=service.roles,
        now=lambda: time.time() + offset["s"],
    )
    issuer = Issuer(KEY, config.auth, config.roles)
    h = Harness(service, context, issuer, context.public_url, port, offset)
    try:
        yield h
    finally:
        await service.aclose()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


#: what the receiver answers: a status, headers, and how long it dawdles first
Behaviour = Callable[[Received], Awaitable[tuple[int, dict[str, str]]]]


async def accept(_: Received) -> tuple[int, dict[str, str]]:
    return 204, {}


@dataclass
class Receiver:
    """A webhook receiver on loopback, recording every request it gets."""

    url: str
    received: list[Received] = field(default_factory=list)
    behaviour: Behaviour = accept
    other: list[Received] = field(default_factory=list)

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < n:
                await asyncio.sleep(0.01)
        return self.received


@asynccontextmanager
async def serve(port: int, routes: list[BaseRoute]) -> AsyncIterator[Receiver]:
    """uvicorn on ``port`` with ``routes`` (a channel's) plus ``/hook`` (the receiver) and
    ``/elsewhere`` (where a redirect would lead: it must never be reached)."""
    receiver = Receiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: Request) -> Response:
        got = Received(dict(request.headers), await request.body())
        receiver.received.append(got)
        status, headers = await receiver.behaviour(got)
        return Response(status_code=status, headers=headers)

    async def elsewhere(request: Request) -> Response:
        receiver.other.append(Received(dict(request.headers), await request.body()))
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/elsewhere", elsewhere, methods=["GET", "POST"]),
            *routes,
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            # a test server never waits for ever on a connection a cancelled client left
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
