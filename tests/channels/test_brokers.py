"""The broker channels against the real Redis, NATS JetStream, RabbitMQ and Mosquitto on
this machine: events arrive in order with their delivery id, decisions come back through
the decisions topic as the approver their token proves, and a decision without a valid
token is refused and audited, never applied."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signoff.channels.base import DeliveryFailed, NoticeType, message
from signoff.channels.brokers.base import BrokerChannel
from signoff.errors import MissingDependency
from signoff.models import ApprovalRequest, Status
from tests.helpers.brokers import KINDS, make_channel, publisher, subscriber
from tests.helpers.channels import Harness, free_port, harness, unique


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as made:
        yield made


async def until(h: Harness, request_id: str, status: Status) -> ApprovalRequest:
    async with asyncio.timeout(5):
        while (found := await h.get(request_id)).status is not status:
            await asyncio.sleep(0.02)
    return found


async def refused(h: Harness, request_id: str | None, n: int = 1) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        while len(found := await h.refusals(request_id)) < n:
            await asyncio.sleep(0.02)
    return [e.body for e in found]


def decision(request_id: str, token: str | None, **fields: Any) -> bytes:
    body: dict[str, Any] = {"requestId": request_id, "decision": "approve", **fields}
    if token is not None:
        body["token"] = token
    return json.dumps(body).encode()


async def started(h: Harness, kind: str, **settings: Any) -> BrokerChannel:
    channel = make_channel(kind, **settings)
    assert isinstance(channel, BrokerChannel)
    await channel.start(h.context)
    if channel.settings.decisions_topic:
        await asyncio.wait_for(channel.consuming.wait(), 10)
    return channel


async def test_events_arrive_in_order_with_their_delivery_id(h: Harness, kind: str) -> None:
    topic = unique("signoff-test-events")
    async with subscriber(kind, topic) as sub:
        channel = await started(h, kind, topic=topic)
        first = await h.submit()
        second = await h.submit(args={"order_id": "ORD-2", "amount": 7})
        notices = [
            h.notice(first, NoticeType.REQUEST),
            h.notice(second, NoticeType.REQUEST),
            h.notice(first, NoticeType.ESCALATED, step=1),
            h.notice(first, NoticeType.DECIDED),
            h.notice(first, NoticeType.OUTCOME),
            h.notice(second, NoticeType.CANCELLED),
            h.notice(second, NoticeType.EXPIRED),
        ]
        receipts = [await channel.send(n) for n in notices]
        got = await sub.take(len(notices))
        await channel.aclose()
    assert [g.delivery_id for g in got] == [n.delivery_id for n in notices]
    assert [g.type for g in got] == [n.type.value for n in notices]
    for g, n in zip(got, notices, strict=True):
        assert g.body == json.loads(json.dumps(message(n)))  # the same body as a webhook's
        assert "callbackUrl" not in g.body
    if kind == "redis":
        assert all(r is not None and "-" in r["stream_id"] for r in receipts)
    elif kind == "nats":
        assert [r["seq"] for r in receipts if r is not None] == list(range(1, 8))
    else:
        assert receipts == [None] * len(notices)


async def test_a_decision_from_the_topic_is_applied_as_its_token_says(
    h: Harness, kind: str
) -> None:
    decisions = unique("signoff-test-decisions")
    async with publisher(kind, decisions) as publish:
        channel = await started(h, kind, topic=unique("signoff-test-ev"), decisions_topic=decisions)
        request = await h.submit()
        token = h.token("paula", "publisher")
        await publish(decision(request.id, token, modified_args={"amount": 100}, reason="ok"))
        approved = await until(h, request.id, Status.APPROVED)
        await channel.aclose()
    (made,) = approved.decisions
    assert (made.by, made.role, made.via) == ("paula", "publisher", kind)
    assert approved.final_args["amount"] == 100


async def test_a_decision_without_a_valid_token_is_refused_and_audited(
    h: Harness, kind: str
) -> None:
    decisions = unique("signoff-test-decisions")
    async with publisher(kind, decisions) as publish:
        channel = await started(h, kind, topic=unique("signoff-test-ev"), decisions_topic=decisions)
        request = await h.submit()
        await publish(decision(request.id, None))
        await publish(decision(request.id, "not-a-jwt"))
        bodies = await refused(h, request.id, 2)
        assert (await h.get(request.id)).status is Status.PENDING
        # the consumer lives on: a good decision after the bad ones is applied
        await publish(decision(request.id, h.token("paula", "publisher")))
        await until(h, request.id, Status.APPROVED)
        await channel.aclose()
    assert all(b["data"]["attempted"] == "decide via events" for b in bodies)
    assert "token: Field required" in bodies[0]["data"]["message"]
    assert "no valid approver token" in bodies[1]["data"]["message"]
    assert "not-a-jwt" not in json.dumps(bodies)


async def test_send_fails_when_the_broker_is_not_there(h: Harness, kind: str) -> None:
    scheme = {"redis": "redis", "nats": "nats", "amqp": "amqp", "mqtt": "mqtt"}[kind]
    channel = make_channel(kind, topic="t", url=f"{scheme}://127.0.0.1:{free_port()}", timeout_s=1)
    await channel.start(h.context)
    with pytest.raises(DeliveryFailed, match=kind):
        await channel.send(h.notice(await h.submit()))
    await channel.aclose()
    await channel.aclose()  # safe twice


@pytest.mark.parametrize(
    ("kind", "module", "driver"),
    [
        ("redis", "signoff.channels.brokers.redis", "redis"),
        ("nats", "signoff.channels.brokers.nats", "nats"),
        ("amqp", "signoff.channels.brokers.amqp", "aio_pika"),
        ("mqtt", "signoff.channels.brokers.mqtt", "aiomqtt"),
    ],
)
def test_a_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, kind: str, module: str, driver: str
) -> None:
    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, driver, None)  # as if the extra were not installed
    with pytest.raises(MissingDependency, match=rf"signoff\[{kind}\]"):
        importlib.import_module(module)


def test_settings_hide_the_url_and_check_it(kind: str) -> None:
    secret_url = {
        "redis": "redis://:hunter2-pass@127.0.0.1:6379/0",
        "nats": "nats://user:hunter2-pass@127.0.0.1:4222",
        "amqp": "amqp://guest:hunter2-pass@127.0.0.1:5672/",
        "mqtt": "mqtt://user:hunter2-pass@127.0.0.1:1883",
    }[kind]
    channel = make_channel(kind, topic="t", url=secret_url)
    assert "hunter2" not in repr(channel.settings)
    assert "hunter2" not in str(channel.settings.model_dump())
    cls = type(channel.settings)
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        cls.model_validate({"type": kind, "url": "http://user:hunter2@x/", "topic": "t"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValidationError):
        cls.model_validate({"type": kind, "url": secret_url, "topic": "has space"})
