"""Message-broker channels: every event published to Redis Streams, NATS JetStream,
RabbitMQ or MQTT, and decisions taken back from a ``decisions_topic`` with the approver's
identity from a JWT inside each message. Each broker's driver is an optional extra."""
