"""Seed 002's routing, end to end through the outbox: high risk to Slack and SMS, medium to
Slack, low to email — from the policy file, through the routes, the outbox and the delivery
worker, to local servers speaking Slack's, Twilio's and SMTP's wire formats with the real
client packages. A decision made in the dashboard then updates the Slack message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from signoff.auth import Verifier
from signoff.config import parse_config
from signoff.connect import connect
from signoff.delivery import ChannelRuntime, build_channels, make_context
from signoff.models import ApprovalRequest, Principal, RequestSpec, Risk, Run, Status
from signoff.service import ApprovalService
from signoff.stores.outbox import Delivery, DeliveryQuery
from tests.channels.conftest import AGENT, CONTEXT, SCHEMA, serving
from tests.channels.fake_slack import FakeSlack
from tests.channels.mail import BOB, Inbox, smtp_server
from tests.channels.providers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio
from tests.channels.slack_world import settings as slack_settings
from tests.channels.texts import BOB_PHONE, OUR_NUMBER
from tests.delivery.world import FAST
from tests.helpers.channels import KEY, free_port, serve

PUBLISHER = Principal(sub="paula", role="publisher")


SEED_002_ROUTES: list[dict[str, Any]] = [
    {"when": 'risk == "high"', "notify": ["slack", "oncall-sms"]},
    {"when": 'risk == "medium"', "notify": ["slack"]},
    {"when": 'risk == "low"', "notify": ["email"]},
]


def seed_002(
    slack_api: str, smtp_port: int, twilio_url: str, routes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The seed's routing as a policy file would hold it."""
    return {
        "channels": {
            "slack": slack_settings(slack_api),
            "oncall-sms": {
                "type": "sms",
                "account_sid": TWILIO_SID,
                "auth_token": TWILIO_TOKEN,
                "from": OUR_NUMBER,
                "api_url": twilio_url,
                "to": {BOB_PHONE: {"sub": "bob", "role": "admin"}},
            },
            "email": {
                "type": "email",
                "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
                "from": "signoff@example.com",
                "to": {BOB: {"sub": "bob", "role": "admin"}},
            },
        },
        "routes": routes,
    }


@dataclass
class Routed:
    service: ApprovalService
    slack: FakeSlack
    twilio: FakeTwilio
    inbox: Inbox

    async def submit(self, risk: Risk) -> ApprovalRequest:
        spec = RequestSpec.model_validate(
            {
                "tool": "issue_refund",
                "args": {"order_id": "ORD-1", "amount": 250},
                "tool_call_id": f"toolu_{risk.value}",
                "run": Run(agent_id="support", run_id="r1"),
                "reason": "Refund $250 for ORD-1",
                "context": CONTEXT,
                "risk": risk,
                "policy": {"min_role": "publisher", "timeout_s": 600, "editable": ["amount"]},
                "args_schema": SCHEMA,
            }
        )
        return (await self.service.submit(spec, AGENT)).request

    async def settled(self, n: int) -> list[Delivery]:
        async with asyncio.timeout(15):
            while True:
                found = await self.service.store.list_deliveries(DeliveryQuery())
                if len(found) >= n and all(d.status != "pending" for d in found):
                    return found
                await asyncio.sleep(0.02)


@asynccontextmanager
async def routed(routes: list[dict[str, Any]] = SEED_002_ROUTES) -> AsyncIterator[Routed]:
    slack, twilio, twilio_port, port = FakeSlack(), FakeTwilio(), free_port(), free_port()
    await slack.start()
    try:
        with smtp_server() as (inbox, smtp_port):
            async with serving(twilio.app(), twilio_port):
                data = seed_002(slack.api_url, smtp_port, f"http://127.0.0.1:{twilio_port}", routes)
                config = parse_config(data, environ={})
                backends = connect("memory://")
                service = ApprovalService(backends.store, backends.bus, config=config)
                await service.start()
                runtime = ChannelRuntime(service, build_channels(config), options=FAST)
                verifier = Verifier(KEY, config.auth, config.roles)
                url = f"http://127.0.0.1:{port}"
                try:
                    async with serve(port, runtime.routes()):
                        await runtime.start(make_context(service, verifier, KEY, url))
                        try:
                            yield Routed(service, slack, twilio, inbox)
                        finally:
                            await runtime.aclose()
                finally:
                    await service.aclose()
    finally:
        await slack.close()


async def test_each_risk_reaches_the_channels_its_route_names_and_no_others() -> None:
    async with routed() as r:
        high = await r.submit(risk=Risk.HIGH)
        medium = await r.submit(risk=Risk.MEDIUM)
        low = await r.submit(risk=Risk.LOW)
        deliveries = await r.settled(4)
    by_request = {(d.request_id, d.channel) for d in deliveries}
    assert by_request == {
        (high.id, "slack"),
        (high.id, "oncall-sms"),
        (medium.id, "slack"),
        (low.id, "email"),
    }
    assert all(d.status == "delivered" for d in deliveries)
    posted = r.slack.called("chat.postMessage")
    assert len(posted) == 2 and {p["channel"] for p in posted} == {"#agent-approvals"}
    assert [m["To"] for m in r.twilio.sent] == [BOB_PHONE]
    assert "issue_refund" in r.twilio.sent[0]["Body"]
    assert r.inbox.recipients == [[BOB]]


async def test_a_decision_in_the_dashboard_updates_the_slack_message() -> None:
    async with routed() as r:
        request = await r.submit(risk=Risk.MEDIUM)
        [sent] = await r.settled(1)
        assert sent.receipt is not None
        waiting = asyncio.create_task(r.service.wait(request.id, AGENT, timeout=30))
        await r.service.decide(request.id, PUBLISHER, "approve", via="dashboard")
        decided = await asyncio.wait_for(waiting, 10)
        await r.settled(2)  # the decision's own delivery: an update of the message
        async with asyncio.timeout(10):
            while not r.slack.called("chat.update"):
                await asyncio.sleep(0.02)
    assert decided.status is Status.APPROVED
    [update] = r.slack.called("chat.update")
    assert (update["channel"], update["ts"]) == (sent.receipt["channel"], sent.receipt["ts"])
    message = r.slack.message(sent.receipt)
    assert message.text == "Approved: issue_refund"
    assert "paula" in json.dumps(message.blocks)  # who decided, shown where the buttons were
    # the buttons are gone: nobody can click a decided request's Approve again
    assert not any(b.get("type") == "actions" for b in message.blocks)


async def test_an_escalation_replies_in_the_slack_thread_and_texts_the_on_call() -> None:
    routes = [
        {
            "when": 'risk == "medium"',
            "notify": ["slack"],
            "escalate": [{"after": "0.5s", "notify": ["slack", "oncall-sms"]}],
        }
    ]
    async with routed(routes) as r:
        await r.submit(risk=Risk.MEDIUM)
        deliveries = await r.settled(3)  # (when it fires is tested in test_worker.py)
    [first] = [d for d in deliveries if d.type == "approval_request"]
    assert first.receipt is not None
    posted = r.slack.called("chat.postMessage")
    assert len(posted) == 2
    reply = posted[1]
    # in the request's own thread, and shown in the channel too: an escalation is there to
    # be seen
    assert reply["thread_ts"] == first.receipt["ts"] and reply.get("reply_broadcast") is True
    assert [m["To"] for m in r.twilio.sent] == [BOB_PHONE]
