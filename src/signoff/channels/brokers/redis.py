"""Redis Streams: every event ``XADD``-ed to ``topic``; decisions read from the stream
``decisions_topic`` through a consumer group.

Each entry has the fields ``message`` (the JSON body), ``id`` (the delivery's id, the same
on every retry: deduplicate on it), ``type`` and ``requestId``. The stream is trimmed to
about ``maxlen`` entries. The receipt is the entry's id.

Decisions: every replica reads the group ``group`` as its own consumer, so each decision
reaches one replica; an entry a replica took and never acknowledged (it died) is claimed
by another after ``claim_idle_s``. A decision is an entry whose ``message`` field holds the
decision JSON, e.g. ``XADD approval-decisions * message '{"requestId": …}'``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Any, Literal

from pydantic import Field

from signoff.errors import MissingDependency

try:
    import redis.asyncio as aioredis
    import tenacity  # noqa: F401 - the extra's other half, used by the consumer
    from redis.exceptions import ResponseError
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise MissingDependency(exc.name or "redis", "redis") from exc

from signoff.channels.base import Notice
from signoff.channels.brokers.base import BrokerChannel, BrokerSettings
from signoff.types import JSONObject

#: how long one XREADGROUP waits for a decision before looking for abandoned ones
BLOCK_MS = 2000


class RedisSettings(BrokerSettings):
    """``[channels.NAME]`` with ``type = "redis"``."""

    type: Literal["redis"] = "redis"
    schemes = ("redis", "rediss", "unix")
    #: trim the events stream to about this many entries (None: never trim)
    maxlen: int | None = Field(default=100_000, ge=1)
    #: the consumer group every replica reads decisions through
    group: str = Field(default="signoff", min_length=1, max_length=200)
    #: a decision left unacknowledged this long (its replica died) is taken over
    claim_idle_s: float = Field(default=60.0, gt=0)


class RedisChannel(BrokerChannel):
    """Events to a Redis stream; decisions from another, through a consumer group."""

    kind = "redis"
    settings_model = RedisSettings
    settings: RedisSettings

    def __init__(self, name: str, settings: RedisSettings) -> None:
        super().__init__(name, settings)
        self._client: aioredis.Redis | None = None

    def _new_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.settings.url.get_secret_value(),
            socket_connect_timeout=self.settings.timeout_s,
            # a connection that silently died must not hold a blocked read forever
            socket_timeout=self.settings.timeout_s + BLOCK_MS / 1000,
            health_check_interval=30,
        )

    async def publish(self, notice: Notice, payload: bytes) -> JSONObject | None:
        if self._client is None:
            self._client = self._new_client()  # connects on first use, again after a failure
        fields: dict[Any, Any] = {
            "message": payload,
            "id": notice.delivery_id,
            "type": notice.type.value,
            "requestId": notice.request.id,
        }
        entry = await self._client.xadd(
            self.settings.topic, fields, maxlen=self.settings.maxlen, approximate=True
        )
        return {"stream_id": entry.decode() if isinstance(entry, bytes) else str(entry)}

    async def drop_publisher(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def consume(self) -> None:
        stream, group = self.settings.decisions_topic, self.settings.group
        assert stream is not None
        me = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        client = self._new_client()
        try:
            try:
                await client.xgroup_create(stream, group, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self.subscribed()
            next_claim = 0.0
            while not self.stopping.is_set():
                if time.monotonic() >= next_claim:
                    # decisions a replica took and never acknowledged (it died)
                    claimed = await client.xautoclaim(
                        stream,
                        group,
                        me,
                        min_idle_time=int(self.settings.claim_idle_s * 1000),
                        start_id="0-0",
                        count=self.PREFETCH,
                    )
                    await self._handle(client, claimed[1])
                    next_claim = time.monotonic() + self.settings.claim_idle_s / 2
                reply: Any = await client.xreadgroup(
                    group, me, {stream: ">"}, count=self.PREFETCH, block=BLOCK_MS
                )
                for _stream, entries in reply or []:
                    await self._handle(client, entries)
        finally:
            await client.aclose()

    async def _handle(self, client: aioredis.Redis, entries: list[Any]) -> None:
        stream, group = self.settings.decisions_topic, self.settings.group
        assert stream is not None
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"message")
            await self.handle(raw if isinstance(raw, bytes) else b"")
            # acknowledged whatever became of it: a bad decision is not redelivered forever
            await client.xack(stream, group, entry_id)
