"""A service with webhook channels and routes, its delivery runtime, and a real webhook
receiver on loopback (which also serves the channels' routes: callbacks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook

from signoff.auth import Verifier
from signoff.config import parse_config
from signoff.connect import connect
from signoff.delivery import ChannelRuntime, WorkerOptions, build_channels, make_context
from signoff.service import ApprovalService
from signoff.stores.outbox import Delivery, DeliveryQuery
from tests.helpers.channels import KEY, Receiver, free_port, serve, whsec

#: retries in tens of milliseconds, so that tests see several
FAST = WorkerOptions(
    lease_s=5.0,
    send_timeout_s=3.0,
    max_attempts=6,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    backoff_jitter_s=0.05,
    poll_s=0.2,
)


@dataclass
class World:
    service: ApprovalService
    runtime: ChannelRuntime
    receiver: Receiver
    secret: str
    port: int

    def events(self) -> list[dict[str, Any]]:
        """What the receiver got, each verified with the reference library."""
        webhook = Webhook(self.secret)
        return [webhook.verify(r.body, r.headers) for r in self.receiver.received]

    async def deliveries(self, **filters: Any) -> list[Delivery]:
        return await self.service.store.list_deliveries(DeliveryQuery(**filters))

    async def settled(self, n: int, timeout: float = 10.0) -> list[Delivery]:
        """Wait until ``n`` deliveries exist and none is pending any more."""
        async with asyncio.timeout(timeout):
            while True:
                found = await self.deliveries()
                if len(found) >= n and all(d.status != "pending" for d in found):
                    return found
                await asyncio.sleep(0.02)


def hook_config(
    url: str,
    secret: str,
    *,
    routes: list[dict[str, Any]] | None = None,
    principal: bool = False,
    timeout_s: float = 2.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    hook: dict[str, Any] = {"type": "webhook", "url": url, "secret": secret, "timeout_s": timeout_s}
    if principal:
        hook["principal"] = {"sub": "ops-bot", "role": "publisher"}
    return {
        "channels": {"hook": hook, **(extra or {})},
        "routes": routes if routes is not None else [{"when": "true", "notify": ["hook"]}],
    }


@asynccontextmanager
async def world(
    db_url: str = "memory://",
    *,
    routes: list[dict[str, Any]] | None = None,
    principal: bool = False,
    options: WorkerOptions = FAST,
    timeout_s: float = 2.0,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[World]:
    port = free_port()
    secret = whsec()
    url = f"http://127.0.0.1:{port}/hook"
    data = hook_config(
        url, secret, routes=routes, principal=principal, timeout_s=timeout_s, extra=extra
    )
    config = parse_config(data, environ={})
    backends = connect(db_url)
    service = ApprovalService(backends.store, backends.bus, config=config)
    await service.start()
    runtime = ChannelRuntime(service, build_channels(config), options=options)
    context = make_context(
        service, Verifier(KEY, config.auth, config.roles), KEY, f"http://127.0.0.1:{port}"
    )
    try:
        async with serve(port, runtime.routes()) as receiver:
            await runtime.start(context)
            try:
                yield World(service, runtime, receiver, secret, port)
            finally:
                await runtime.aclose()
    finally:
        await service.aclose()
