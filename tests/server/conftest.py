"""A real approval server for the tests: uvicorn on loopback, in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from signoff.auth import Issuer
from signoff.config import Config, parse_config
from signoff.connect import connect
from signoff.delivery import ChannelRuntime
from signoff.server.app import create_app
from signoff.server.http import server_config
from signoff.service import ApprovalService
from signoff.types import Clock

SECRET = b"test-secret-that-is-long-enough-for-hs256!!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Live:
    url: str
    service: ApprovalService
    issuer: Issuer
    config: Config

    def agent_token(self, name: str = "support-bot", ttl: str = "1h") -> str:
        return self.issuer.token(name, kind="agent", ttl=ttl)

    def approver_token(self, name: str = "paul", role: str = "publisher", ttl: str = "1h") -> str:
        return self.issuer.token(name, kind="approver", role=role, ttl=ttl)

    def client(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


async def start_live(
    tmp_path: Path,
    config: Config | None = None,
    clock: Clock = time.time,
    db_url: str | None = None,
    *,
    channels: Callable[[ApprovalService], ChannelRuntime] | None = None,
) -> tuple[Live, uvicorn.Server, asyncio.Task[None]]:
    """A server on a free loopback port, in this event loop, on ``tmp_path/server.db`` (or
    ``db_url``: replicas share one PostgreSQL database); ``channels`` builds its channel
    runtime (else the config's, with the worker's defaults)."""
    config = config or Config()
    backends = connect(db_url or f"sqlite:///{tmp_path / 'server.db'}")  # as `signoff serve`
    service = ApprovalService(backends.store, backends.bus, config=config, clock=clock)
    runtime = channels(service) if channels is not None else None
    app = create_app(service, key=SECRET, config=config, channels=runtime)
    port = free_port()
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    live = Live(
        f"http://127.0.0.1:{port}", service, Issuer(SECRET, config.auth, config.roles), config
    )
    return live, server, task


async def stop_live(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path)
    yield info
    await stop_live(server, task)


@pytest.fixture
def refund_config() -> Config:
    return parse_config(
        {"tools": [{"name": "issue_refund", "min_role": "publisher", "editable": ["amount"]}]}
    )
