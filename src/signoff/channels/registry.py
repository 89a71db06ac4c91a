"""The channel types the policy file may name, each in its own module (an optional extra's
driver is imported only when a channel of that type is configured)."""

from __future__ import annotations

import importlib

from signoff.channels.base import Channel
from signoff.errors import ConfigError

#: type → "module:Class"
CHANNEL_TYPES: dict[str, str] = {
    "webhook": "signoff.channels.webhook:WebhookChannel",
    "redis": "signoff.channels.brokers.redis:RedisChannel",
    "nats": "signoff.channels.brokers.nats:NatsChannel",
    "amqp": "signoff.channels.brokers.amqp:AmqpChannel",
    "mqtt": "signoff.channels.brokers.mqtt:MqttChannel",
    "slack": "signoff.channels.slack:SlackChannel",
    "email": "signoff.channels.email:EmailChannel",
    "sms": "signoff.channels.sms:SmsChannel",
    "ably": "signoff.channels.ably:AblyChannel",
}


def channel_class(type_: str) -> type[Channel]:
    """The class for a channel type (importing its module, and so its extra's driver)."""
    spec = CHANNEL_TYPES.get(type_)
    if spec is None:
        raise ConfigError(f"unknown channel type {type_!r}; the types are {sorted(CHANNEL_TYPES)}")
    module_name, _, attribute = spec.partition(":")
    cls: type[Channel] = getattr(importlib.import_module(module_name), attribute)
    return cls
