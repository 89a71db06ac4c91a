"""A broker that goes away and comes back: sends fail meanwhile (the outbox retries them),
and the decisions consumer reconnects by itself and takes decisions again."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import subprocess
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signoff.channels.base import DeliveryFailed
from signoff.channels.brokers.base import BrokerChannel
from signoff.models import Status
from tests.helpers.brokers import make_channel, publisher
from tests.helpers.channels import Harness, harness, unique
from tests.helpers.private_broker import PRIVATE_KINDS, PrivateBroker


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as made:
        yield made


async def approved_through(h: Harness, publish: object, request_id: str) -> None:
    assert callable(publish)
    token = h.token("paula", "publisher")
    await publish(json.dumps({"requestId": request_id, "decision": "approve", "token": token}))
    async with asyncio.timeout(10):
        while (await h.get(request_id)).status is not Status.APPROVED:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("kind", PRIVATE_KINDS)
async def test_the_channel_comes_back_after_a_broker_restart(
    h: Harness, kind: str, tmp_path: Path
) -> None:
    broker = PrivateBroker(kind, tmp_path)
    await broker.start()
    decisions = unique("restart-decisions")
    channel = make_channel(
        kind, url=broker.url, topic=unique("restart-events"), decisions_topic=decisions, timeout_s=1
    )
    assert isinstance(channel, BrokerChannel)
    try:
        await channel.start(h.context)
        await asyncio.wait_for(channel.consuming.wait(), 10)
        await channel.send(h.notice(await h.submit()))

        await broker.stop()
        with pytest.raises(DeliveryFailed):
            await channel.send(h.notice(await h.submit()))
        async with asyncio.timeout(10):
            while channel.consuming.is_set():
                await asyncio.sleep(0.02)

        await broker.start()
        await asyncio.wait_for(channel.consuming.wait(), 15)
        await channel.send(h.notice(await h.submit()))  # the publisher reconnects too
        async with publisher(kind, decisions, broker.url) as publish:
            request = await h.submit()
            await approved_through(h, lambda raw: publish(raw.encode()), request.id)
    finally:
        await channel.aclose()
        await broker.stop()
        _collect_sockets_dropped_by_the_clients()


def _collect_sockets_dropped_by_the_clients() -> None:
    """A broker client whose connect is cancelled by a timeout while the broker is down can
    drop the half-made socket without closing it (the client library's, not the channel's:
    the channel closes every client it made). Collect such sockets here, where the broker was
    killed on purpose, so that their ResourceWarning does not fail whichever test the
    garbage collector happens to run in later."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


async def test_the_amqp_consumer_reconnects_after_its_connection_is_closed(h: Harness) -> None:
    # the machine's RabbitMQ is shared: only this channel's own connection is closed
    name = unique("amqp-lost")
    decisions = unique("amqp-lost-decisions")
    channel = make_channel("amqp", name=name, topic=unique("ev"), decisions_topic=decisions)
    assert isinstance(channel, BrokerChannel)
    async with publisher("amqp", decisions) as publish:
        try:
            await channel.start(h.context)
            await asyncio.wait_for(channel.consuming.wait(), 10)
            listing = await asyncio.to_thread(
                _rabbitmqctl, "list_connections", "pid", "client_properties"
            )
            (line,) = [ln for ln in listing.splitlines() if f"signoff {name} decisions" in ln]
            pid = re.match(r"\s*(<[^>]+>)", line)
            assert pid is not None
            await asyncio.to_thread(_rabbitmqctl, "close_connection", pid.group(1), "test")
            async with asyncio.timeout(10):
                while channel.consuming.is_set():
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(channel.consuming.wait(), 15)
            request = await h.submit()
            await approved_through(h, lambda raw: publish(raw.encode()), request.id)
        finally:
            await channel.aclose()
