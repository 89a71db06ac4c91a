"""RabbitMQ (AMQP 0-9-1): every event published to the durable topic exchange ``topic``,
with the routing key the event's type (``approval_request``, ``approval_decided`` …), so a
subscriber binds a queue to what it wants (``#`` for everything); decisions consumed from
a durable queue bound to the exchange ``decisions_topic``.

Messages are persistent (delivery mode 2), ``application/json``, with ``message_id`` the
delivery's id and ``type`` the event's type; the channel waits for the broker's publisher
confirm, so a send that returns was stored by the broker. An event that no queue is bound
to is dropped by the broker, as a topic exchange does (subscribers bind durable queues).

Decisions: the queue (``decisions_queue``, default the exchange's name) is shared by every
replica, so each decision reaches one; publish a decision to the exchange with any routing
key, or straight to the queue. It is acknowledged after it is handled, whatever became of
it.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from signoff.errors import MissingDependency

try:
    import aio_pika
    import tenacity  # noqa: F401 - the extra's other half, used by the consumer
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractExchange,
        AbstractIncomingMessage,
    )
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise MissingDependency(exc.name or "aio-pika", "amqp") from exc

from signoff.channels.base import DeliveryFailed, Notice
from signoff.channels.brokers.base import BrokerChannel, BrokerSettings
from signoff.types import JSONObject


class AmqpSettings(BrokerSettings):
    """``[channels.NAME]`` with ``type = "amqp"``."""

    type: Literal["amqp"] = "amqp"
    schemes = ("amqp", "amqps")
    #: the durable queue decisions are consumed from (default: ``decisions_topic``)
    decisions_queue: str | None = Field(default=None, min_length=1, max_length=255)


class AmqpChannel(BrokerChannel):
    """Events to a topic exchange; decisions from a queue every replica shares."""

    kind = "amqp"
    settings_model = AmqpSettings
    settings: AmqpSettings

    def __init__(self, name: str, settings: AmqpSettings) -> None:
        super().__init__(name, settings)
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def _connect(self, role: str) -> AbstractConnection:
        # a plain connection, not a robust one: a lost connection fails the send (the outbox
        # retries) or the consumer (it reconnects), and nothing reconnects behind our back
        return await aio_pika.connect(
            self.settings.url.get_secret_value(),
            timeout=self.settings.timeout_s,
            client_properties={"connection_name": f"signoff {self.name} {role}"},
        )

    async def _declare(self, channel: AbstractChannel, name: str) -> AbstractExchange:
        return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)

    async def publish(self, notice: Notice, payload: bytes) -> JSONObject | None:
        async with self.publish_lock:
            connection = self._connection
            if connection is None or self._exchange is None or not _alive(connection):
                await self.drop_publisher()
                connection = self._connection = await self._connect("publisher")
                channel = await connection.channel(publisher_confirms=True)
                self._exchange = await self._declare(channel, self.settings.topic)
            exchange = self._exchange
        confirmation = await exchange.publish(
            aio_pika.Message(
                payload,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=notice.delivery_id,
                type=notice.type.value,
                headers={"requestId": notice.request.id},
            ),
            routing_key=notice.type.value,
            mandatory=False,
            timeout=self.settings.timeout_s,
        )
        if confirmation is None:
            raise DeliveryFailed(f"{self.kind}: the broker did not confirm the message")
        return None

    async def drop_publisher(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None and not connection.is_closed:
            await connection.close()

    async def consume(self) -> None:
        exchange_name = self.settings.decisions_topic
        assert exchange_name is not None
        connection = await self._connect("decisions")
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.PREFETCH)
            exchange = await self._declare(channel, exchange_name)
            queue = await channel.declare_queue(
                self.settings.decisions_queue or exchange_name, durable=True
            )
            await queue.bind(exchange, routing_key="#")
            await queue.consume(self._on_message)
            self.subscribed()
            stop = asyncio.ensure_future(self.stopping.wait())
            gone = asyncio.ensure_future(lost.wait())
            try:
                await asyncio.wait([stop, gone], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                gone.cancel()
            if lost.is_set():
                raise ConnectionError("the connection to the AMQP broker was lost")
        finally:
            if not connection.is_closed:
                await connection.close()

    async def _on_message(self, received: AbstractIncomingMessage) -> None:
        await self.handle(received.body)
        # acknowledged whatever became of it: a bad decision is not redelivered forever
        await received.ack()


def _alive(connection: AbstractConnection) -> bool:
    """Whether ``connection`` is still up (a connection the broker closed is not marked
    closed, only no longer connected)."""
    return not connection.is_closed and connection.connected.is_set()
