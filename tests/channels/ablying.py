"""The Ably channel wired to a local Ably (over TLS, as the ably package insists for a key):
helpers shared by the Ably tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ably import AblyRest
from ably.types.message import Message

from signoff.channels.ably import AblyChannel, AblySettings
from tests.channels.conftest import Rig, free_port, rigged, serving
from tests.channels.providers import ABLY_KEY, FakeAbly, ably_signature, ably_token, self_signed

CHANNEL = "ai:approvals"


@dataclass
class Ablying:
    rig: Rig
    ably: FakeAbly
    channel: AblyChannel
    port: int

    @property
    def webhook_path(self) -> str:
        return "/channels/ably/ably/webhook"

    def approver(self, client_id: str, role: str | None) -> AblyRest:
        """An approver's Ably client, signed in with a JWT from the seed guides' auth
        server (clientId and the role claim)."""
        return AblyRest(
            token=ably_token(client_id, role),
            endpoint="127.0.0.1",
            tls=True,
            tls_port=self.port,
            use_binary_protocol=False,
        )

    async def respond(
        self, client_id: str, role: str | None, data: dict[str, Any], **extras: Any
    ) -> dict[str, Any]:
        """Publish an ``approval-response`` as that approver; the webhook's answer."""
        client = self.approver(client_id, role)
        try:
            message = Message(name="approval-response", data=data, extras=extras or None)
            await client.channels.get(CHANNEL).publish(message)
        finally:
            await client.close()
        answer = self.ably.webhook_answers[-1]
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()["results"][0]
        return result

    async def post_webhook(self, body: dict[str, Any], *, key: str = ABLY_KEY) -> httpx.Response:
        """Post a batch to the webhook as Ably would, signed with ``key``."""
        raw = json.dumps(body).encode()
        headers = {
            "content-type": "application/json",
            "x-ably-key": key.partition(":")[0],
            "x-ably-signature": ably_signature(raw, key),
        }
        async with self.rig.client() as http:
            return await http.post(self.webhook_path, content=raw, headers=headers)


@asynccontextmanager
async def ablying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Ablying]:
    cert, key = self_signed(tmp_path)
    # the ably package's HTTP client (httpx) trusts this certificate, as it would a CA's
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    fake = FakeAbly()
    port = free_port()
    async with serving(fake.app(), port, ssl_certfile=str(cert), ssl_keyfile=str(key)):
        settings = AblySettings.model_validate(
            {"key": ABLY_KEY, "channel": CHANNEL, "rest_url": f"https://127.0.0.1:{port}"}
        )
        channel = AblyChannel("ably", settings)
        async with rigged(channel) as rig:
            fake.webhook_url = rig.url + "/channels/ably/ably/webhook"
            yield Ablying(rig, fake, channel, port)
