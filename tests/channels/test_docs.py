"""docs/channels.md shows working code: every TOML example in "Channels for systems" is a
valid channel, and its Python receiver verifies what the webhook channel sends."""

from __future__ import annotations

import re
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from signoff.channels.registry import channel_class
from signoff.channels.webhook import WebhookChannel, WebhookSettings
from tests.helpers.channels import harness, serve, whsec

DOC = Path(__file__).resolve().parents[2] / "docs" / "channels.md"


def section() -> str:
    text = DOC.read_text()
    start = text.index("## Channels for systems")
    following = text.find("\n## ", start + 1)
    return text[start : following if following != -1 else len(text)]


def test_every_toml_example_is_a_valid_channel() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", section(), flags=re.S)
    checked = set()
    for block in blocks:
        for name, table in tomllib.loads(block)["channels"].items():
            cls = channel_class(table["type"])
            channel = cls(name, cls.settings_model.model_validate(table))
            checked.add(channel.kind)
    assert checked == {"webhook", "redis", "nats", "amqp", "mqtt"}


async def test_the_python_receiver_in_the_docs_verifies_signoffs_webhooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (code,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", section(), flags=re.S)
        if "async def approvals" in block
    ]
    secret = whsec()
    monkeypatch.setenv("OPS_HOOK_SECRET", secret)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    async with harness() as h:
        settings = WebhookSettings(url=f"http://127.0.0.1:{h.port}/docs", secret=secret)
        channel = WebhookChannel("ops-hook", settings)
        await channel.start(h.context)
        route = Route("/docs", namespace["approvals"], methods=["POST"])
        async with serve(h.port, [route]), httpx.AsyncClient() as http:
            notice = h.notice(await h.submit())
            await channel.send(notice)  # 204: verified
            await channel.send(notice)  # 204: a retry, deduplicated
            assert namespace["seen"] == {notice.delivery_id}
            forged = await http.post(
                settings.url,
                content=channel.body(notice),
                headers={
                    "webhook-id": "x",
                    "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": "v1,AAAA",
                },
            )
            assert forged.status_code == 400
        await channel.aclose()
