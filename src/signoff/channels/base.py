"""Channels: how an approval request reaches the people and systems that decide it.

A channel is named in the policy file (``[channels.NAME]``, ``type = "webhook" | "redis" |
…``). The delivery machinery (the outbox) hands it one :class:`Notice` at a time, at least
once and in order per request; the channel sends it (``send``) and returns a *receipt*
(what it needs to remember about what it sent: a Slack message's ``ts``, an email's
message id), which later notices about the same request carry (``Notice.receipts``), so a
channel can update what it sent before (a Slack message after a decision made anywhere).

A channel that decides (a webhook's callback, a broker's decisions topic, a Slack button,
an email link, an SMS reply, an Ably message) does so through :class:`ChannelContext`:
``decide`` is the approval service's own decide (authorize → compare-and-set → audit), with
the identity the channel verified (a signed request from the channel's provider, mapped in
the config to a ``sub`` and role, or an approver JWT), never one taken from a payload.

``send`` raises :class:`DeliveryFailed` for what may succeed later (the outbox retries it
with backoff) and :class:`DeliveryRefused` for what never will (it is kept as failed). A
channel never blocks anything but its own deliveries.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict
from starlette.routing import BaseRoute

from signoff.audit import iso
from signoff.errors import SignoffError
from signoff.models import ApprovalRequest, DecisionKind, Principal
from signoff.roles import RoleLadder
from signoff.types import JSONObject


class NoticeType(StrEnum):
    """What a notice announces (the ``type`` of a webhook's or a broker's message)."""

    REQUEST = "approval_request"
    DECIDED = "approval_decided"
    EXPIRED = "approval_expired"
    CANCELLED = "approval_cancelled"
    ESCALATED = "approval_escalated"
    OUTCOME = "tool_outcome"


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing a channel is asked to send: one event about one request."""

    #: the delivery's id: the same on every retry (a receiver dedupes on it; a webhook's
    #: ``webhook-id``)
    delivery_id: str
    channel: str
    type: NoticeType
    #: the request as the event left it
    request: ApprovalRequest
    at: datetime
    #: the escalation step (1, 2 …) of an ``approval_escalated`` notice
    step: int | None = None
    #: what this channel returned for the earlier notices about this request, oldest first
    receipts: Sequence[JSONObject] = ()
    #: which delivery attempt this is (1 the first time)
    attempt: int = 1


def message(notice: Notice, *, callback_url: str | None = None) -> JSONObject:
    """The message body webhooks and brokers carry (docs/channels.md): the seed guides'
    shape, plus the whole request object."""
    request = notice.request
    body: JSONObject = {
        "type": notice.type.value,
        "requestId": request.id,
        "executionId": request.run.run_id,
        "agentTag": request.run.agent_id,
        "tool": request.tool,
        "parameters": request.final_args,
        "reason": request.reason,
        "risk": request.risk.value,
        "status": request.status.value,
        "timestamp": iso(notice.at),
        "expiresAt": iso(request.expires_at),
        "request": request.model_dump(mode="json"),
    }
    if notice.step is not None:
        body["escalation"] = notice.step
    if callback_url is not None:
        body["callbackUrl"] = callback_url
    return body


class DeliveryFailed(SignoffError):
    """The delivery did not succeed this time; it may later (it is retried).
    ``retry_after`` is the receiver's own word on when (seconds), where it gave one."""

    code = "delivery_failed"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class DeliveryRefused(SignoffError):
    """The delivery can never succeed (a receiver that says it is gone, a bad address):
    it is kept as failed, not retried."""

    code = "delivery_refused"


class Decide(Protocol):
    """The approval service's decide, for a channel: authorize, compare-and-set, audit."""

    async def __call__(
        self,
        request_id: str,
        principal: Principal,
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        modified_args: JSONObject | None = None,
        seen_digest: str | None = None,
        via: str = "api",
        grant: JSONObject | None = None,
        response: Any = None,
    ) -> ApprovalRequest: ...


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What a running channel may use: the service's decide and reads, single-use tokens in
    the store, approver-token verification, the server's key and public address."""

    decide: Decide
    #: the request as it is now (any request: the channel vouches for its own use)
    get_request: Callable[[str], Awaitable[ApprovalRequest]]
    #: record a single-use token's key as spent until a time; False when it already was
    spend: Callable[[str, datetime], Awaitable[bool]]
    #: an approver's JWT → the principal it proves (raises Unauthorized)
    verify_token: Callable[[str], Awaitable[Principal]]
    #: write a refused attempt to the audit log: (request id or None, what was tried, why)
    refused: Callable[[str | None, str, str], Awaitable[None]]
    #: the server's signing key (callback tokens, links): HMAC material, never sent anywhere
    key: bytes
    #: where people and systems reach this server (links, callback URLs), no trailing slash
    public_url: str
    roles: RoleLadder
    #: the clock (seconds since the epoch), as the service's
    now: Callable[[], float] = time.time
    #: every request still pending: how a channel whose replies name neither the request
    #: nor a token (an SMS code, the seed guides' ``toolCallId``) finds the request, the
    #: same on every replica. None where the host offers no such listing.
    pending: Callable[[], Awaitable[Sequence[ApprovalRequest]]] | None = None


class ChannelSettings(BaseModel):
    """A channel's table in the policy file; each type adds its own keys. Secrets are
    ``SecretStr`` (never printed) and may come from the environment:
    ``SIGNOFF_CHANNEL_<NAME>_<KEY>`` (the name upper-cased, ``-`` as ``_``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


class Channel(ABC):
    """One configured channel. ``kind`` is its ``type`` in the policy file."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[ChannelSettings]]

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = settings
        self.context: ChannelContext | None = None

    async def start(self, context: ChannelContext) -> None:
        """Connect (a broker, an SMTP server …) and start listening for decisions, if the
        channel takes any. Called once, before the first ``send``."""
        self.context = context

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Disconnect. Safe to call twice."""

    @abstractmethod
    async def send(self, notice: Notice) -> JSONObject | None:
        """Deliver ``notice``; return a receipt to keep (or None). Raises
        :class:`DeliveryFailed` (retried later) or :class:`DeliveryRefused` (never)."""

    def routes(self) -> list[BaseRoute]:
        """HTTP endpoints the server mounts for this channel (a callback, a button's
        interactions, a link's page, an inbound reply, a provider's webhook)."""
        return []
