"""The outbox end to end on each real broker on this machine (Redis Streams, NATS
JetStream, RabbitMQ, Mosquitto): a config with a broker channel and a route, transitions
that write deliveries in their transactions, the worker that sends them, and a subscriber
(the broker's own client) that reads every event, in order per request."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.stores.outbox import DeliveryStatus
from tests.conftest import AGENT, PUBLISHER, refund_spec
from tests.delivery.world import world
from tests.helpers.brokers import KINDS, URLS, subscriber
from tests.helpers.channels import unique


@pytest.mark.parametrize("kind", KINDS)
async def test_config_route_outbox_worker_broker(tmp_path: Path, kind: str) -> None:
    topic = unique("signoff-outbox")
    events = {"type": kind, "url": URLS[kind], "topic": topic, "timeout_s": 3}
    routes = [{"when": "tool == 'issue_refund'", "notify": ["events"]}]
    async with (
        subscriber(kind, topic) as sub,
        world(f"sqlite:///{tmp_path / 'outbox.db'}", routes=routes, extra={"events": events}) as w,
    ):
        first = (await w.service.submit(refund_spec(), AGENT)).request
        second = (await w.service.submit(refund_spec(args={"order_id": "ORD-2"}), AGENT)).request
        await w.service.decide(first.id, PUBLISHER, "approve")
        await w.service.cancel(second.id, AGENT, "not needed")
        await w.service.consume(first.id, AGENT)
        await w.service.record_outcome(first.id, AGENT, "succeeded", {"ok": True})
        done = await w.settled(5)  # sent (NATS: its stream exists by then) …
        got = await sub.take(5, timeout=15)  # … and there to be read

    assert all(d.status is DeliveryStatus.DELIVERED and d.channel == "events" for d in done)
    assert {g.delivery_id for g in got} == {d.id for d in done}  # each once, by its id
    of_first = [g.type for g in got if g.body["requestId"] == first.id]
    of_second = [g.type for g in got if g.body["requestId"] == second.id]
    assert of_first == ["approval_request", "approval_decided", "tool_outcome"]
    assert of_second == ["approval_request", "approval_cancelled"]
