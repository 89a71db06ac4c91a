"""The memory store's devices: a dict under the store's lock (see :mod:`.device_base`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime

from signoff.stores.device_base import (
    KEEP_AFTER_EXPIRY,
    LISTED_STATUSES,
    SLOW_DOWN_S,
    DeviceRecord,
    DeviceStore,
)


@dataclass(slots=True)
class DeviceRow:
    record: DeviceRecord
    device_code_hash: str
    user_code_hash: str


class MemoryDevices(DeviceStore):
    """Mixed into :class:`~signoff.stores.memory.MemoryStore`."""

    _lock: threading.Lock
    _devices: dict[str, DeviceRow]

    def _set(self, device_id: str, **changes: object) -> DeviceRecord:
        row = self._devices[device_id]
        row.record = replace(row.record, **changes)  # type: ignore[arg-type]
        return row.record

    async def device_insert(
        self, device: DeviceRecord, device_code_hash: str, user_code_hash: str
    ) -> bool:
        now = device.created_at
        with self._lock:
            for key, row in list(self._devices.items()):
                if row.record.expires_at + KEEP_AFTER_EXPIRY < now:
                    del self._devices[key]
            for row in self._devices.values():
                if row.device_code_hash == device_code_hash or (
                    row.user_code_hash == user_code_hash
                    and row.record.status == "pending"
                    and row.record.expires_at > now
                ):
                    return False
            self._devices[device.id] = DeviceRow(device, device_code_hash, user_code_hash)
            return True

    async def device_get(self, device_id: str) -> DeviceRecord | None:
        with self._lock:
            row = self._devices.get(device_id)
            return None if row is None else row.record

    async def device_by_user_code(self, user_code_hash: str, now: datetime) -> DeviceRecord | None:
        with self._lock:
            for row in self._devices.values():
                r = row.record
                if (
                    row.user_code_hash == user_code_hash
                    and r.status == "pending"
                    and r.expires_at > now
                ):
                    return r
            return None

    async def device_poll(
        self, device_code_hash: str, now: datetime
    ) -> tuple[DeviceRecord, bool] | None:
        with self._lock:
            found = [r for r in self._devices.values() if r.device_code_hash == device_code_hash]
            if not found:
                return None
            r = found[0].record
            last = r.last_poll_at
            too_fast = last is not None and (now - last).total_seconds() < r.interval_s
            interval = r.interval_s + SLOW_DOWN_S if too_fast else r.interval_s
            return self._set(r.id, last_poll_at=now, interval_s=interval), too_fast

    async def device_decide(
        self, device_id: str, approve: bool, sub: str, role: str, now: datetime
    ) -> DeviceRecord | None:
        with self._lock:
            row = self._devices.get(device_id)
            if row is None or row.record.status != "pending" or row.record.expires_at <= now:
                return None
            status = "approved" if approve else "denied"
            return self._set(device_id, status=status, sub=sub, role=role, decided_at=now)

    async def device_activate(
        self, device_id: str, now: datetime, expires_at: datetime
    ) -> DeviceRecord | None:
        with self._lock:
            row = self._devices.get(device_id)
            if row is None or row.record.status != "approved" or row.record.expires_at <= now:
                return None
            return self._set(
                device_id, status="active", refresh_gen=1, expires_at=expires_at, used_at=now
            )

    async def device_rotate(self, device_id: str, gen: int, now: datetime) -> DeviceRecord | None:
        with self._lock:
            row = self._devices.get(device_id)
            if row is None:
                return None
            r = row.record
            if r.status != "active" or r.refresh_gen != gen or r.expires_at <= now:
                return None
            return self._set(device_id, refresh_gen=gen + 1, used_at=now)

    async def device_revoke(self, device_id: str) -> DeviceRecord | None:
        with self._lock:
            row = self._devices.get(device_id)
            if row is None or row.record.status not in ("pending", "approved", "active"):
                return None
            return self._set(device_id, status="revoked")

    async def device_failed_guess(self, now: datetime, limit: int) -> list[DeviceRecord]:
        burned = []
        with self._lock:
            for row in self._devices.values():
                r = row.record
                if r.status != "pending" or r.expires_at <= now:
                    continue
                failures = r.failures + 1
                status = "burned" if failures >= limit else "pending"
                updated = self._set(r.id, failures=failures, status=status)
                if status == "burned":
                    burned.append(updated)
        return burned

    async def device_list(self, sub: str | None, limit: int = 200) -> list[DeviceRecord]:
        with self._lock:
            rows = [
                row.record
                for row in self._devices.values()
                if row.record.status in LISTED_STATUSES and (sub is None or row.record.sub == sub)
            ]
        rows.sort(key=lambda r: r.created_at, reverse=True)
        return rows[:limit]
