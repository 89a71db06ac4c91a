"""The brokers on this machine, seen from the other side: what a subscriber reads from a
broker channel's topic, and how a system publishes a decision to its decisions topic.
Each uses the broker's own client, not signoff's code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiomqtt
import nats
import redis.asyncio as aioredis
from nats.js.api import DeliverPolicy

from signoff.channels.base import Channel
from signoff.channels.registry import channel_class

URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/",
    "mqtt": "mqtt://127.0.0.1:1883",
}
KINDS = list(URLS)


@dataclass(frozen=True)
class Got:
    """One event as a subscriber received it: the body, and the delivery id and type the
    broker's metadata carried."""

    body: dict[str, Any]
    delivery_id: str
    type: str


def make_channel(kind: str, name: str = "events", **settings: Any) -> Channel:
    cls = channel_class(kind)
    data: dict[str, Any] = {"type": kind, "url": URLS[kind], "timeout_s": 3}
    data.update(settings)
    return cls(name, cls.settings_model.model_validate(data))


@dataclass
class Subscriber:
    """Reads what a channel published to ``topic``."""

    kind: str
    topic: str
    got: list[Got] = field(default_factory=list)
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _reader: Any = None

    async def take(self, n: int, timeout: float = 5.0) -> list[Got]:
        async with asyncio.timeout(timeout):
            while len(self.got) < n:
                await self._poll()
        return self.got

    async def _poll(self) -> None:
        if self.kind == "redis":
            entries = await self._reader.xrange(self.topic)
            self.got = [
                Got(
                    json.loads(f[b"message"]),
                    f[b"id"].decode(),
                    f[b"type"].decode(),
                )
                for _, f in entries
            ]
        elif self.kind == "nats":
            if self._reader is None:
                js = self._js
                stream = await js.find_stream_name_by_subject(self.topic)
                self._reader = await js.pull_subscribe(
                    self.topic,
                    stream=stream,
                    config=nats.js.api.ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                )
            with_timeout = await self._reader.fetch(10, timeout=1)
            for m in with_timeout:
                headers = m.headers or {}
                self.got.append(
                    Got(json.loads(m.data), headers["Nats-Msg-Id"], headers["Signoff-Type"])
                )
                await m.ack()
        elif self.kind == "amqp":
            message = await self._reader.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.02)
                return
            self.got.append(Got(json.loads(message.body), message.message_id, message.type))
        else:
            await asyncio.sleep(0.02)  # the MQTT listener task fills self.got

    _js: Any = None


@asynccontextmanager
async def subscriber(kind: str, topic: str) -> AsyncIterator[Subscriber]:
    """Subscribed before anything is sent (AMQP and MQTT only deliver to who listens)."""
    sub = Subscriber(kind, topic)
    async with sub.stack:
        if kind == "redis":
            client = aioredis.Redis.from_url(URLS["redis"])
            sub._reader = client
            sub.stack.push_async_callback(client.aclose)
            sub.stack.push_async_callback(client.delete, topic)
        elif kind == "nats":
            nc = await nats.connect(URLS["nats"])
            sub.stack.push_async_callback(nc.close)
            sub._js = nc.jetstream()
            sub.stack.push_async_callback(_delete_stream, sub._js, topic)
        elif kind == "amqp":
            connection = await aio_pika.connect(URLS["amqp"])
            sub.stack.push_async_callback(connection.close)
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                topic, aio_pika.ExchangeType.TOPIC, durable=True
            )
            sub.stack.push_async_callback(exchange.delete)
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, routing_key="#")
            sub._reader = queue
        else:
            mqtt = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)
            await sub.stack.enter_async_context(mqtt)
            await mqtt.subscribe(topic, qos=1)

            async def listen() -> None:
                async for m in mqtt.messages:
                    props = dict(getattr(m.properties, "UserProperty", []))
                    assert isinstance(m.payload, bytes)
                    sub.got.append(Got(json.loads(m.payload), props["id"], props["type"]))

            task = asyncio.create_task(listen())
            sub.stack.callback(task.cancel)
        yield sub


async def _delete_stream(js: Any, topic: str) -> None:
    try:
        stream = await js.find_stream_name_by_subject(topic)
    except nats.js.errors.NotFoundError:
        return
    await js.delete_stream(stream)


@asynccontextmanager
async def publisher(kind: str, topic: str, url: str | None = None) -> AsyncIterator[Any]:
    """A function that publishes raw bytes to the decisions topic the way a system would."""
    url = url or URLS[kind]
    async with AsyncExitStack() as stack:
        if kind == "redis":
            client = aioredis.Redis.from_url(url)
            stack.push_async_callback(client.aclose)
            stack.push_async_callback(client.delete, topic)

            async def send(raw: bytes) -> None:
                await client.xadd(topic, {"message": raw})

        elif kind == "nats":
            nc = await nats.connect(url)
            stack.push_async_callback(nc.close)
            js = nc.jetstream()
            stack.push_async_callback(_delete_stream, js, topic)

            async def send(raw: bytes) -> None:
                await js.publish(topic, raw)

        elif kind == "amqp":
            connection = await aio_pika.connect(url)
            stack.push_async_callback(connection.close)
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                topic, aio_pika.ExchangeType.TOPIC, durable=True
            )
            stack.push_async_callback(exchange.delete)
            stack.push_async_callback(channel.queue_delete, topic)

            async def send(raw: bytes) -> None:
                await exchange.publish(aio_pika.Message(raw), routing_key="decision")

        else:
            port = int(url.rsplit(":", 1)[1])
            mqtt = aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5)
            await stack.enter_async_context(mqtt)

            async def send(raw: bytes) -> None:
                await mqtt.publish(topic, raw, qos=1)

        yield send
