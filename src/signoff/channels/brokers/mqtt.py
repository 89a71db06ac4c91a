"""MQTT (v5): every event published to ``topic`` with QoS 1 (the broker acknowledges it
before ``send`` returns); decisions taken from ``decisions_topic`` through a shared
subscription.

Each message carries the MQTT 5 properties ``content-type: application/json`` and the user
properties ``id`` (the delivery's id: deduplicate on it) and ``type``.

Decisions: every replica subscribes to ``$share/{group}/{decisions_topic}``, so the broker
hands each decision to one of them (MQTT 5 shared subscriptions; Mosquitto, EMQX, HiveMQ
and VerneMQ have them). MQTT acknowledges a QoS 1 message when the client library has
received it, not after signoff handled it, and a session that is not connected misses what
is published meanwhile: a decision sent while no replica is connected is lost (its sender
sees the request still pending), where the other brokers keep it.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from typing import Literal
from urllib.parse import unquote

from pydantic import Field

from signoff.errors import MissingDependency

try:
    import aiomqtt
    import tenacity  # noqa: F401 - the extra's other half, used by the consumer
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise MissingDependency(exc.name or "aiomqtt", "mqtt") from exc

from signoff.channels.base import Notice
from signoff.channels.brokers.base import BrokerChannel, BrokerSettings, url_parts
from signoff.types import JSONObject

log = logging.getLogger(__name__)


class MqttSettings(BrokerSettings):
    """``[channels.NAME]`` with ``type = "mqtt"``."""

    type: Literal["mqtt"] = "mqtt"
    schemes = ("mqtt", "mqtts")
    #: the shared-subscription group every replica takes decisions through
    group: str = Field(default="signoff", pattern=r"^[A-Za-z0-9_-]{1,100}$")


class MqttChannel(BrokerChannel):
    """Events to an MQTT topic at QoS 1; decisions from a shared subscription."""

    kind = "mqtt"
    settings_model = MqttSettings
    settings: MqttSettings

    def __init__(self, name: str, settings: MqttSettings) -> None:
        super().__init__(name, settings)
        self._client: aiomqtt.Client | None = None

    def _new_client(self, role: str) -> aiomqtt.Client:
        parts = url_parts(self.settings)
        tls = parts.scheme == "mqtts"
        return aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            identifier=f"signoff-{role}-{secrets.token_hex(6)}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=self.settings.timeout_s,
            tls_context=ssl.create_default_context() if tls else None,
            logger=log,
        )

    async def publish(self, notice: Notice, payload: bytes) -> JSONObject | None:
        async with self.publish_lock:
            if self._client is None:
                client = self._new_client("publisher")
                await client.__aenter__()  # held open across sends, closed by drop_publisher
                self._client = client
            client = self._client
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ContentType = "application/json"
        properties.UserProperty = [("id", notice.delivery_id), ("type", notice.type.value)]
        await client.publish(
            self.settings.topic,
            payload,
            qos=1,
            properties=properties,
            timeout=self.settings.timeout_s,
        )
        return None

    async def drop_publisher(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except aiomqtt.MqttError as exc:
                log.debug("channel %s: disconnecting: %s", self.name, self.describe(exc))

    async def consume(self) -> None:
        topic = self.settings.decisions_topic
        assert topic is not None
        async with self._new_client("decisions") as client:
            await client.subscribe(f"$share/{self.settings.group}/{topic}", qos=1)
            self.subscribed()
            async for received in client.messages:
                await self.handle(received.payload)
        raise ConnectionError("the MQTT broker closed the subscription")
