"""The memory store's outbox: the same rules as the SQL stores' (see
:mod:`signoff.stores.outbox`), kept in a dict under the store's lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from signoff.stores.outbox import Delivery, DeliveryQuery, DeliveryStatus, NewDelivery, Outbox
from signoff.types import JSONObject

PENDING = DeliveryStatus.PENDING


class MemoryOutbox(Outbox):
    _lock: threading.Lock

    def _outbox_init(self) -> None:
        self._deliveries: dict[str, Delivery] = {}
        self._owners: dict[str, str] = {}
        self._delivery_seq = 0

    def _insert_deliveries(self, deliveries: Sequence[NewDelivery]) -> None:
        """Called with the lock held, in the write that announces them."""
        for new in deliveries:
            if new.id in self._deliveries:
                raise ValueError(f"delivery {new.id} exists already")
        for new in deliveries:
            self._delivery_seq += 1
            self._deliveries[new.id] = Delivery(
                id=new.id,
                seq=self._delivery_seq,
                request_id=new.request_id,
                channel=new.channel,
                type=new.type,
                step=new.step,
                status=PENDING,
                attempts=0,
                created_at=new.created_at,
                due_at=new.created_at,
            )

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
        with self._lock:
            pending = sorted(
                (d for d in self._deliveries.values() if d.status is PENDING),
                key=lambda d: d.seq,
            )
            first: dict[tuple[str, str], int] = {}
            for d in pending:
                first.setdefault((d.request_id, d.channel), d.seq)
            due = [
                d
                for d in pending
                if first[(d.request_id, d.channel)] == d.seq
                and d.channel not in skip
                and (only is None or d.channel == only)
                and d.due_at <= now
                and (d.lease_until is None or d.lease_until <= now)
            ]
            due.sort(key=lambda d: (d.due_at, d.seq))
            claimed = []
            for d in due[:limit]:
                leased = replace(d, attempts=d.attempts + 1, lease_until=lease_until)
                self._deliveries[d.id] = leased
                self._owners[d.id] = owner
                claimed.append(leased)
            return claimed

    def _held(self, delivery_id: str, owner: str) -> Delivery | None:
        d = self._deliveries.get(delivery_id)
        if d is None or d.status is not PENDING or self._owners.get(delivery_id) != owner:
            return None
        return d

    async def finish_delivery(
        self, delivery_id: str, owner: str, now: datetime, receipt: JSONObject | None
    ) -> bool:
        with self._lock:
            d = self._held(delivery_id, owner)
            if d is None:
                return False
            self._deliveries[delivery_id] = replace(
                d,
                status=DeliveryStatus.DELIVERED,
                delivered_at=now,
                receipt=receipt,
                last_error=None,
                lease_until=None,
            )
            self._owners.pop(delivery_id, None)
            return True

    async def fail_delivery(
        self, delivery_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> bool:
        with self._lock:
            d = self._held(delivery_id, owner)
            if d is None:
                return False
            self._deliveries[delivery_id] = replace(
                d,
                status=PENDING if retry_at is not None else DeliveryStatus.FAILED,
                due_at=retry_at or d.due_at,
                last_error=error,
                lease_until=None,
            )
            self._owners.pop(delivery_id, None)
            return True

    async def receipts(self, request_id: str, channel: str, before_seq: int) -> list[JSONObject]:
        with self._lock:
            found = [
                d
                for d in self._deliveries.values()
                if d.request_id == request_id
                and d.channel == channel
                and d.seq < before_seq
                and d.receipt is not None
            ]
        return [d.receipt for d in sorted(found, key=lambda d: d.seq) if d.receipt is not None]

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return self._deliveries.get(delivery_id)

    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        with self._lock:
            rows = sorted(self._deliveries.values(), key=lambda d: d.seq, reverse=True)
        wanted = query.filters()
        out = []
        for d in rows:
            if query.before is not None and d.seq >= query.before:
                continue
            values = {"status": d.status.value, "channel": d.channel, "request_id": d.request_id}
            if all(values[column] == value for column, value in wanted):
                out.append(d)
            if len(out) >= query.limit:
                break
        return out

    async def retry_delivery(self, delivery_id: str, now: datetime) -> Delivery | None:
        with self._lock:
            d = self._deliveries.get(delivery_id)
            if d is None:
                return None
            leased = d.lease_until is not None and d.lease_until > now
            if d.status is DeliveryStatus.DELIVERED or (d.status is PENDING and leased):
                return d
            again = replace(d, status=PENDING, due_at=now, attempts=0, lease_until=None)
            self._deliveries[delivery_id] = again
            self._owners.pop(delivery_id, None)
            return again

    async def delivery_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for d in self._deliveries.values():
                key = (d.channel, d.status.value)
                counts[key] = counts.get(key, 0) + 1
        return counts

    async def next_delivery_due(self) -> datetime | None:
        with self._lock:
            times = [
                max(d.due_at, d.lease_until) if d.lease_until is not None else d.due_at
                for d in self._deliveries.values()
                if d.status is PENDING
            ]
        return min(times, default=None)
