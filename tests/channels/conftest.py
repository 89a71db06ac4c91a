"""The people's channels against a real approval service, on real HTTP.

:class:`Rig` is an in-memory service, a :class:`ChannelContext` built from it exactly as a
host builds one (the service's decide, reads and store; refusals in the audit log), and a
Starlette app on uvicorn at ``rig.url`` that mounts the channels' routes, so that the pages,
replies and webhooks are reached over loopback HTTP as their senders would reach them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from signoff.audit import AuditEntry
from signoff.auth import Verifier
from signoff.channels.base import Channel, ChannelContext, Notice, NoticeType
from signoff.config import Config
from signoff.connect import Backends, connect
from signoff.models import ApprovalRequest, Principal, RequestSpec, Risk, Run
from signoff.service import ApprovalService

KEY = b"channel-tests-server-key-that-is-long-enough!!"
AGENT = Principal(sub="support-bot", kind="agent")
SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": "number", "exclusiveMinimum": 0},
    },
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}
CONTEXT = {
    "why": "The parcel arrived damaged; photos are on the ticket.",
    "affected": "Order ORD-1 and the customer's card",
    "reversible": False,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: Any, port: int, **options: Any) -> AsyncIterator[uvicorn.Server]:
    """``app`` on 127.0.0.1:``port`` in this event loop, for the block."""
    options.setdefault("timeout_graceful_shutdown", 2)  # never wait for ever on a client
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


@dataclass
class Rig:
    backends: Backends
    service: ApprovalService
    context: ChannelContext
    url: str
    port: int
    channels: list[Channel] = field(default_factory=list)
    deliveries: int = 0
    submitted: list[str] = field(default_factory=list)

    async def submit(
        self, *, risk: Risk = Risk.HIGH, min_role: str = "publisher", **overrides: Any
    ) -> ApprovalRequest:
        data: dict[str, Any] = {
            "tool": "issue_refund",
            "args": {"order_id": "ORD-1", "amount": 250},
            "tool_call_id": f"toolu_{len(self.submitted) + 1:02d}",
            "run": Run(agent_id="support", run_id="r1"),
            "reason": "Refund $250 for ORD-1",
            "context": CONTEXT,
            "risk": risk,
            "policy": {"min_role": min_role, "timeout_s": 600, "editable": ["amount"]},
            "args_schema": SCHEMA,
        }
        data.update(overrides)
        created = await self.service.submit(RequestSpec.model_validate(data), AGENT)
        self.submitted.append(created.request.id)
        return created.request

    def notice(self, request: ApprovalRequest, channel: Channel) -> Notice:
        self.deliveries += 1
        return Notice(
            delivery_id=f"dlv_{self.deliveries}",
            channel=channel.name,
            type=NoticeType.REQUEST,
            request=request,
            at=self.service.now(),
        )

    async def get(self, request_id: str) -> ApprovalRequest:
        return await self.context.get_request(request_id)

    async def audit(self, type_: str) -> list[dict[str, Any]]:
        """The audit events of one type, oldest first."""
        events = await self.backends.store.audit_events()
        return [e.body for e in events if e.body["type"] == type_]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, follow_redirects=False)


@asynccontextmanager
async def rigged(*channels: Channel, config: Config | None = None) -> AsyncIterator[Rig]:
    """Start ``channels`` on a fresh service and serve their routes."""
    backends = connect("memory://")
    service = ApprovalService(backends.store, backends.bus, config=config, sweep=False)
    await service.start()
    system = Principal(sub="system", role=service.roles.highest)

    async def get_request(request_id: str) -> ApprovalRequest:
        return await service.get(request_id, system)

    async def pending() -> Sequence[ApprovalRequest]:
        return await service.pending(system)

    async def refused(request_id: str | None, what: str, why: str) -> None:
        actor: dict[str, Any] = {"sub": "channel", "kind": "approver", "role": None}
        data: dict[str, Any] = {"attempted": what, "why": why}
        entry = AuditEntry("decision.refused", request_id, actor, service.now(), None, data)
        await backends.store.append_audit(entry)

    verifier = Verifier(KEY, service.config.auth, service.roles)

    async def verify_token(token: str) -> Principal:
        return verifier.verify(token)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    context = ChannelContext(
        decide=service.decide,
        get_request=get_request,
        spend=backends.store.spend,
        verify_token=verify_token,
        refused=refused,
        key=KEY,
        public_url=url,
        roles=service.roles,
        pending=pending,
    )
    for channel in channels:
        await channel.start(context)
    app = Starlette(routes=[route for channel in channels for route in channel.routes()])
    rig = Rig(backends, service, context, url, port, list(channels))
    try:
        async with serving(app, port):
            yield rig
    finally:
        for channel in channels:
            await channel.aclose()
        await service.aclose()
