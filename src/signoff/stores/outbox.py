"""The outbox: deliveries written in the same transaction as the event they announce.

A transition that announces something (a request created, decided, escalated …) carries
its deliveries in its :class:`~signoff.stores.base.Change`; the store inserts them with the
request's new state and its audit events, so an event is never committed without its
deliveries, nor a delivery without its event. The delivery worker
(:mod:`signoff.delivery`) then *claims* due deliveries with a lease, sends them, and
records the outcome:

- a claim takes only deliveries that are due, not leased (or whose lease ran out: the
  replica that held it died), and that have no earlier pending delivery of the same
  request to the same channel, so each channel hears about a request in order;
- a claim counts an attempt, so a delivery that kills whoever sends it still gives up;
- the outcome is written only by the lease's holder while the delivery is pending: a
  replica whose lease ran out and was taken over records nothing, so one success is
  recorded per delivery however many times it was sent.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from signoff.audit import iso
from signoff.types import JSONObject


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery as a transition asks for it."""

    id: str
    request_id: str
    channel: str
    #: what it announces: a notice type (``approval_request``, ``approval_decided`` …)
    type: str
    created_at: datetime
    #: the escalation step of an ``approval_escalated`` delivery
    step: int | None = None

    def to_json(self) -> JSONObject:
        """As the PostgreSQL functions take it (one JSON array per write)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "type": self.type,
            "step": self.step,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery as stored. ``seq`` orders the deliveries of one request."""

    id: str
    seq: int
    request_id: str
    channel: str
    type: str
    step: int | None
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    due_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None
    receipt: JSONObject | None = None
    #: until when a worker holds it (None: nobody)
    lease_until: datetime | None = None

    def to_dict(self) -> JSONObject:
        """The API's delivery object (no lease holder: that is a worker's business)."""
        return {
            "id": self.id,
            "request_id": self.request_id,
            "channel": self.channel,
            "type": self.type,
            "step": self.step,
            "status": self.status.value,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "due_at": iso(self.due_at),
            "delivered_at": None if self.delivered_at is None else iso(self.delivered_at),
            "last_error": self.last_error,
            "receipt": self.receipt,
        }


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    status: str | None = None
    channel: str | None = None
    request_id: str | None = None
    limit: int = 100
    #: a ``seq``: only deliveries older than it (the listing is newest first)
    before: int | None = None

    def filters(self) -> list[tuple[str, str]]:
        """``(column, value)`` pairs; the column names are fixed strings, never input."""
        pairs = (
            ("status", self.status),
            ("channel", self.channel),
            ("request_id", self.request_id),
        )
        return [(column, value) for column, value in pairs if value is not None]


def receipt_text(receipt: JSONObject | None) -> str | None:
    return None if receipt is None else json.dumps(receipt, separators=(",", ":"))


def receipt_value(text: str | None) -> JSONObject | None:
    if text is None:
        return None
    value: Any = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


class Outbox(ABC):
    """The store's outbox operations (see the module docstring)."""

    @abstractmethod
    async def claim_deliveries(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        *,
        skip: Sequence[str] = (),
        only: str | None = None,
    ) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries to ``owner`` (each claim counts an
        attempt), oldest due first, never one behind an earlier pending delivery of the
        same request and channel; none for a channel in ``skip`` (resting: see
        :mod:`signoff.delivery.breaker`), and only ``only``'s when given."""

    @abstractmethod
    async def finish_delivery(
        self, delivery_id: str, owner: str, now: datetime, receipt: JSONObject | None
    ) -> bool:
        """Record a success, if ``owner`` still holds the delivery; False otherwise."""

    @abstractmethod
    async def fail_delivery(
        self, delivery_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> bool:
        """Record a failed attempt: retried at ``retry_at``, or failed for good (None)."""

    @abstractmethod
    async def receipts(self, request_id: str, channel: str, before_seq: int) -> list[JSONObject]:
        """What ``channel`` returned for the earlier deliveries about ``request_id``."""

    @abstractmethod
    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    @abstractmethod
    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        """Deliveries newest first, filtered (``limit`` of them at most)."""

    @abstractmethod
    async def retry_delivery(self, delivery_id: str, now: datetime) -> Delivery | None:
        """Make a failed (or waiting, unleased) delivery due now with a fresh count of
        attempts; None when there is no such delivery, the delivery unchanged when it
        cannot be retried (delivered, or being sent)."""

    @abstractmethod
    async def delivery_counts(self) -> dict[tuple[str, str], int]:
        """How many deliveries there are per ``(channel, status)``."""

    @abstractmethod
    async def next_delivery_due(self) -> datetime | None:
        """When the earliest pending delivery is due (or its lease runs out)."""
