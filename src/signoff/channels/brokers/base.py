"""What every broker channel shares: the settings, publishing with one try, and the
decisions consumer.

Publishing: the message body of :func:`signoff.channels.base.message`, one per event, with
the delivery's id in the broker's own metadata (a Redis field, ``Nats-Msg-Id``, AMQP
``message_id``, an MQTT v5 user property) so a subscriber can drop the duplicates that
at-least-once delivery brings. Any failure of the driver is :class:`DeliveryFailed`; the
publisher's connection is dropped and made again on the next send.

Decisions (``decisions_topic``): a background task consumes messages
``{"requestId", "decision", "reason", "modified_args", "seen_digest", "token"}``. The
approver is whoever the ``token`` (an approver JWT) proves, nothing else in the message;
the decision goes through the service's own decide (role floor, self-approval, editable
fields, schema, quorum, seen arguments), ``via`` the broker's kind. A message that cannot
be read, or whose token does not verify, is refused and audited, never applied. Every
message is acknowledged whatever became of it, so a bad one is never redelivered forever.
The consumer reconnects with exponential backoff and jitter (tenacity) after the broker
goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from abc import abstractmethod
from typing import ClassVar, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from signoff._util import stop_task
from signoff.channels.base import (
    Channel,
    ChannelContext,
    ChannelSettings,
    DeliveryFailed,
    DeliveryRefused,
    Notice,
    message,
)
from signoff.channels.inbound import load
from signoff.errors import InvalidArguments, NotFound, SignoffError, Unauthorized, UsageError
from signoff.types import JSONObject

log = logging.getLogger(__name__)

#: how long past its own timeout a consumer may take to stop
STOP_GRACE_S = 5.0
#: a topic, subject, stream or exchange name: printable, no white space
_NAME = re.compile(r"[!-~]{1,255}")


class BrokerSettings(ChannelSettings):
    """Keys every broker channel takes."""

    # the URL may hold a password: an error never quotes it
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: the broker's URL (it may carry user:password@; it is never logged or shown)
    url: SecretStr
    #: where every event is published (a stream, subject, exchange or topic)
    topic: str
    #: where decisions come from; without it the channel only publishes
    decisions_topic: str | None = None
    #: how long a publish (connection included) may take before it counts as failed
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    #: the URL schemes the broker's driver takes
    schemes: ClassVar[tuple[str, ...]] = ()

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in cls.schemes or not parts.hostname:
            raise ValueError(f"must be a URL with a host, scheme one of {list(cls.schemes)}")
        return value

    @field_validator("topic", "decisions_topic")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.fullmatch(value):
            raise ValueError("must be 1 to 255 printable characters without spaces")
        return value


class DecisionMessage(BaseModel):
    """A decision taken from a broker. Unknown keys are refused: a misspelt
    ``modified_args`` must not become an approval of the unmodified call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requestId: str = Field(min_length=1, max_length=200)
    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=10_000)
    modified_args: JSONObject | None = None
    seen_digest: str | None = Field(default=None, min_length=1, max_length=100)
    #: the approver's JWT: the only source of who decides
    token: str = Field(min_length=1, max_length=16_384)


def body(notice: Notice) -> bytes:
    """The bytes published for ``notice``."""
    document = message(notice)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _request_id(raw: bytes) -> str | None:
    """The message's ``requestId`` where one can be read, for the audit of a refusal."""
    with contextlib.suppress(ValueError, RecursionError):
        value = json.loads(raw)
        if isinstance(value, dict):
            found = value.get("requestId")
            if isinstance(found, str) and 0 < len(found) <= 200:
                return found
    return None


class BrokerChannel(Channel):
    """A broker channel: ``publish`` and ``consume`` are the broker's; the rest is here."""

    settings: BrokerSettings

    #: how many decisions a consumer holds unacknowledged at once
    PREFETCH: ClassVar[int] = 16

    def __init__(self, name: str, settings: BrokerSettings) -> None:
        super().__init__(name, settings)
        self._consumer: asyncio.Task[None] | None = None
        #: held while the publisher's connection is made or dropped
        self.publish_lock = asyncio.Lock()
        #: set while the consumer is subscribed (tests wait on it; so may a health check)
        self.consuming = asyncio.Event()
        #: set by aclose. Consumers also stop on it, not only on cancellation: a driver may
        #: swallow a cancellation that lands mid-command (redis-py 8.1 does, in XACK)
        self.stopping = asyncio.Event()

    # -- what each broker provides ----------------------------------------------------------

    @abstractmethod
    async def publish(self, notice: Notice, payload: bytes) -> JSONObject | None:
        """Publish ``payload`` for ``notice`` (connecting first if need be) and return the
        receipt. Any exception means it was not published."""

    @abstractmethod
    async def drop_publisher(self) -> None:
        """Close the publisher's connection (the next publish makes a new one)."""

    @abstractmethod
    async def consume(self) -> None:
        """Connect, subscribe to ``decisions_topic`` (call :meth:`subscribed` then), and pass
        each message's bytes to :meth:`handle`, acknowledging it after; run until the
        connection fails (raise), closing what it opened on the way out."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, context: ChannelContext) -> None:
        # nothing connects here: a broker that is down must not stop the server starting
        await super().start(context)
        self.stopping.clear()
        if self.settings.decisions_topic and self._consumer is None:
            self._consumer = asyncio.create_task(
                self._consume_forever(), name=f"signoff-channel-{self.name}-decisions"
            )

    async def aclose(self) -> None:
        self.stopping.set()
        consumer, self._consumer = self._consumer, None
        try:
            async with asyncio.timeout(self.settings.timeout_s + STOP_GRACE_S):
                await stop_task(consumer)
        except TimeoutError:
            log.warning("channel %s: the decisions consumer did not stop in time", self.name)
        self.consuming.clear()
        async with self.publish_lock:
            await self.drop_publisher()

    # -- publishing ---------------------------------------------------------------------------

    async def send(self, notice: Notice) -> JSONObject | None:
        if self.context is None:
            raise UsageError(f"channel {self.name!r} was not started")
        payload = body(notice)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await self.publish(notice, payload)
        except (DeliveryFailed, DeliveryRefused):
            raise
        except TimeoutError as exc:
            await self._drop_quietly()
            raise DeliveryFailed(
                f"{self.kind}: not published within {self.settings.timeout_s:g} s"
            ) from exc
        except Exception as exc:
            # whatever the driver raised, the event was not published: retry later
            await self._drop_quietly()
            raise DeliveryFailed(f"{self.kind}: publish failed ({self.describe(exc)})") from exc

    async def _drop_quietly(self) -> None:
        try:
            await self.drop_publisher()
        except Exception as exc:
            log.debug("channel %s: closing the publisher failed: %s", self.name, type(exc))

    def describe(self, exc: BaseException) -> str:
        """An exception as text safe to log and store: the URL and its password removed."""
        text = f"{type(exc).__name__}: {exc}"
        url = self.settings.url.get_secret_value()
        password = urlsplit(url).password
        for secret in (url, password):
            if secret:
                text = text.replace(secret, "***")
        return text[:300]

    # -- decisions ----------------------------------------------------------------------------

    def subscribed(self) -> None:
        """Called by :meth:`consume` once it receives messages."""
        log.info("channel %s: taking decisions from %s", self.name, self.settings.decisions_topic)
        self.consuming.set()

    async def _consume_forever(self) -> None:
        retrying = AsyncRetrying(
            # 0.1 s, 0.2 s … up to 5 s, each with up to 0.5 s of jitter (replicas spread out)
            wait=wait_exponential(multiplier=0.1, max=5.0) + wait_random(0, 0.5),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._lost,
        )
        async for attempt in retrying:  # never gives up: only aclose stops it
            with attempt:
                try:
                    await self.consume()
                finally:
                    self.consuming.clear()
                if self.stopping.is_set():
                    return
                raise ConnectionError("the consumer stopped")

    def _lost(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "channel %s: decisions consumer: %s; reconnecting in %.1f s",
            self.name,
            self.describe(exc) if exc is not None else "stopped",
            wait,
        )

    async def handle(self, raw: bytes) -> None:
        """Apply one decision message. Never raises: whatever happens, the message is done."""
        try:
            await self._apply(raw)
        except Exception:
            log.exception("channel %s: a decision message could not be handled", self.name)

    async def _apply(self, raw: bytes) -> None:
        context = self.context
        if context is None:
            return
        try:
            decision = load(raw, DecisionMessage)
        except SignoffError as exc:
            await self._refuse(_request_id(raw), f"malformed decision message: {exc.message}")
            return
        request_id = decision.requestId
        try:
            principal = await context.verify_token(decision.token)
        except Unauthorized as exc:
            await self._refuse(request_id, f"no valid approver token: {exc.message}")
            return
        if decision.decision == "reject":
            if decision.modified_args:
                await self._refuse(request_id, "a rejection cannot carry modified_args")
                return
            if not (decision.reason and decision.reason.strip()):
                await self._refuse(request_id, "a rejection needs a reason")
                return
        try:
            await context.decide(
                request_id,
                principal,
                decision.decision,
                reason=decision.reason,
                modified_args=decision.modified_args,
                seen_digest=decision.seen_digest,
                via=self.kind,
            )
        except (NotFound, InvalidArguments) as exc:
            # refused before the service's transaction, so not audited there
            await self._refuse(request_id, exc.message)
        except SignoffError as exc:
            # role, self-approval, state, edits, seen arguments: the service audited it
            log.info("channel %s: decision on %s refused: %s", self.name, request_id, exc.code)
        else:
            log.info("channel %s: %s decided %s", self.name, principal.sub, request_id)

    async def _refuse(self, request_id: str | None, why: str) -> None:
        log.info("channel %s: decision message refused: %s", self.name, why)
        assert self.context is not None
        await self.context.refused(request_id, f"decide via {self.name}", why)


def stream_name(topic: str) -> str:
    """A name usable as a NATS stream or durable consumer, made from a topic."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic)[:200]


def url_parts(settings: BrokerSettings) -> SplitResult:
    """The parsed URL (user, password, host, port, path)."""
    return urlsplit(settings.url.get_secret_value())
