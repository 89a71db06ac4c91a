"""The PostgreSQL store's devices (see :mod:`.device_base`). The pool is in autocommit, so
each read-modify-write is one statement: an ``UPDATE … WHERE <expected state> RETURNING``
(the poll locks its row in the same statement), never a read and then a write."""

from __future__ import annotations

from abc import abstractmethod
from datetime import UTC, datetime
from typing import Any

from signoff.stores.device_base import KEEP_AFTER_EXPIRY, SLOW_DOWN_S, DeviceRecord, DeviceStore


def _when(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _record(row: tuple[Any, ...]) -> DeviceRecord:
    (id_, name, address, status, sub, role, created, expires, interval, polled, failures, gen,
     decided, used) = row[:14]  # fmt: skip
    return DeviceRecord(
        id=id_,
        name=name,
        address=address,
        status=status,
        sub=sub,
        role=role,
        created_at=created.astimezone(UTC),
        expires_at=expires.astimezone(UTC),
        interval_s=int(interval),
        last_poll_at=_when(polled),
        failures=int(failures),
        refresh_gen=int(gen),
        decided_at=_when(decided),
        used_at=_when(used),
    )


class PostgresDevices(DeviceStore):
    """Mixed into :class:`~signoff.stores.postgres.PostgresStore`, which provides
    ``_rows`` (one statement on a pooled connection)."""

    @abstractmethod
    async def _rows(self, name: str, params: dict[str, Any] | None = None) -> list[Any]: ...

    async def _change(self, name: str, params: dict[str, Any]) -> DeviceRecord | None:
        rows = await self._rows(name, params)
        return _record(rows[0]) if rows else None

    async def device_insert(
        self, device: DeviceRecord, device_code_hash: str, user_code_hash: str
    ) -> bool:
        await self._rows("device_purge", {"before": device.created_at - KEEP_AFTER_EXPIRY})
        params = {
            "id": device.id,
            "device_code_hash": device_code_hash,
            "user_code_hash": user_code_hash,
            "name": device.name,
            "address": device.address,
            "status": device.status,
            "sub": device.sub,
            "role": device.role,
            "created_at": device.created_at,
            "expires_at": device.expires_at,
            "interval_s": device.interval_s,
            "last_poll_at": device.last_poll_at,
            "failures": device.failures,
            "refresh_gen": device.refresh_gen,
            "decided_at": device.decided_at,
            "used_at": device.used_at,
        }
        return bool(await self._rows("device_insert", params))

    async def device_get(self, device_id: str) -> DeviceRecord | None:
        return await self._change("device_get", {"id": device_id})

    async def device_by_user_code(self, user_code_hash: str, now: datetime) -> DeviceRecord | None:
        return await self._change(
            "device_by_user_code", {"user_code_hash": user_code_hash, "now": now}
        )

    async def device_poll(
        self, device_code_hash: str, now: datetime
    ) -> tuple[DeviceRecord, bool] | None:
        params = {"device_code_hash": device_code_hash, "now": now, "slow_down": SLOW_DOWN_S}
        rows = await self._rows("device_poll", params)
        return (_record(rows[0]), bool(rows[0][14])) if rows else None

    async def device_decide(
        self, device_id: str, approve: bool, sub: str, role: str, now: datetime
    ) -> DeviceRecord | None:
        status = "approved" if approve else "denied"
        params = {"id": device_id, "status": status, "sub": sub, "role": role, "now": now}
        return await self._change("device_decide", params)

    async def device_activate(
        self, device_id: str, now: datetime, expires_at: datetime
    ) -> DeviceRecord | None:
        params = {"id": device_id, "now": now, "expires_at": expires_at}
        return await self._change("device_activate", params)

    async def device_rotate(self, device_id: str, gen: int, now: datetime) -> DeviceRecord | None:
        return await self._change("device_rotate", {"id": device_id, "gen": gen, "now": now})

    async def device_revoke(self, device_id: str) -> DeviceRecord | None:
        return await self._change("device_revoke", {"id": device_id})

    async def device_failed_guess(self, now: datetime, limit: int) -> list[DeviceRecord]:
        rows = await self._rows("device_count_failure", {"now": now, "limit": limit})
        return [r for r in map(_record, rows) if r.status == "burned"]

    async def device_list(self, sub: str | None, limit: int = 200) -> list[DeviceRecord]:
        rows = await self._rows("device_list", {"sub": sub, "limit": limit})
        return [_record(row) for row in rows]
