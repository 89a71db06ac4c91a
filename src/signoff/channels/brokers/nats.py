"""NATS JetStream: every event published to the subject ``topic``; decisions pulled from the
subject ``decisions_topic`` through a durable consumer.

Streams: when no JetStream stream holds ``topic`` yet, the channel creates one (named
``stream``, or the topic with every character but letters, digits, ``_`` and ``-`` made
``_``) with that one subject and the server's default limits; likewise for
``decisions_topic`` (``decisions_stream``). A stream the operator made beforehand is used
as it is. Each message carries the header ``Nats-Msg-Id`` (the delivery's id), so
JetStream itself drops a retry of a publish it already stored (within the stream's
duplicate window); the receipt is the stream and its sequence number.

Decisions: one durable pull consumer (``durable``) shared by every replica, so each decision
is handled by one; a decision is acknowledged after it is handled, whatever became of it.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from signoff.errors import MissingDependency

try:
    import nats
    import nats.errors
    import tenacity  # noqa: F401 - the extra's other half, used by the consumer
    from nats.aio.client import Client as NatsClient
    from nats.js import JetStreamContext
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise MissingDependency(exc.name or "nats-py", "nats") from exc

from signoff.channels.base import Notice
from signoff.channels.brokers.base import BrokerChannel, BrokerSettings, stream_name
from signoff.types import JSONObject

log = logging.getLogger(__name__)

#: how long one fetch waits for decisions before looking at the connection again
FETCH_S = 2.0


class NatsSettings(BrokerSettings):
    """``[channels.NAME]`` with ``type = "nats"``."""

    type: Literal["nats"] = "nats"
    schemes = ("nats", "tls")
    #: the stream to create for ``topic`` when none holds it (default: from the topic)
    stream: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,200}$")
    #: the stream to create for ``decisions_topic`` when none holds it
    decisions_stream: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,200}$")
    #: the durable consumer every replica pulls decisions through (default: from the name)
    durable: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,200}$")
    #: how many times JetStream offers one decision before giving up on it
    max_deliver: int = Field(default=5, ge=1)


class NatsChannel(BrokerChannel):
    """Events to a JetStream subject; decisions from another, through a durable consumer."""

    kind = "nats"
    settings_model = NatsSettings
    settings: NatsSettings

    def __init__(self, name: str, settings: NatsSettings) -> None:
        super().__init__(name, settings)
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    async def _connect(self, role: str) -> NatsClient:
        async def quiet(exc: Exception) -> None:  # the driver's own errors, logged safely
            log.debug("channel %s (%s): %s", self.name, role, self.describe(exc))

        # the connection is not the driver's to keep alive: a lost one fails the send
        # (the outbox retries) or the consumer (it reconnects), so both see a broker restart
        return await nats.connect(
            servers=[self.settings.url.get_secret_value()],
            name=f"signoff {self.name} {role}",
            connect_timeout=max(1, int(self.settings.timeout_s)),
            allow_reconnect=False,
            error_cb=quiet,
        )

    async def _stream_for(self, js: JetStreamContext, subject: str, name: str | None) -> str:
        """The stream that holds ``subject``, created when there is none."""
        try:
            return await js.find_stream_name_by_subject(subject)
        except NotFoundError:
            stream = name or stream_name(subject)
            await js.add_stream(name=stream, subjects=[subject])
            log.info("channel %s: created the JetStream stream %s", self.name, stream)
            return stream

    async def publish(self, notice: Notice, payload: bytes) -> JSONObject | None:
        async with self.publish_lock:
            if self._nc is None or self._js is None or not self._nc.is_connected:
                await self.drop_publisher()
                self._nc = await self._connect("publisher")
                js = self._nc.jetstream(timeout=self.settings.timeout_s)
                await self._stream_for(js, self.settings.topic, self.settings.stream)
                self._js = js
            js = self._js
        headers = {
            "Nats-Msg-Id": notice.delivery_id,
            "Signoff-Type": notice.type.value,
            "Signoff-Request-Id": notice.request.id,
            "Content-Type": "application/json",
        }
        ack = await js.publish(self.settings.topic, payload, headers=headers)
        return {"stream": ack.stream, "seq": ack.seq}

    async def drop_publisher(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def consume(self) -> None:
        subject = self.settings.decisions_topic
        assert subject is not None
        nc = await self._connect("decisions")
        try:
            js = nc.jetstream(timeout=self.settings.timeout_s)
            stream = await self._stream_for(js, subject, self.settings.decisions_stream)
            durable = self.settings.durable or stream_name(f"signoff-{self.name}")
            subscription = await js.pull_subscribe(
                subject,
                durable=durable,
                stream=stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    # the first replica to create it starts from now: old decisions in a
                    # stream made beforehand are not replayed
                    deliver_policy=DeliverPolicy.NEW,
                    ack_wait=30,
                    max_deliver=self.settings.max_deliver,
                ),
            )
            self.subscribed()
            while nc.is_connected and not self.stopping.is_set():
                try:
                    messages = await subscription.fetch(self.PREFETCH, timeout=FETCH_S)
                except nats.errors.TimeoutError:
                    continue
                for received in messages:
                    await self.handle(received.data)
                    await received.ack()
            if not self.stopping.is_set():
                raise ConnectionError("the connection to NATS was lost")
        finally:
            if not nc.is_closed:
                await nc.close()
