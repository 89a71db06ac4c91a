"""The SQLite store's devices (see :mod:`.device_base`): every write is a unit of work for
the store's group commit, every change one ``UPDATE … RETURNING`` compare-and-set."""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from signoff._util import to_datetime
from signoff.stores import sql
from signoff.stores.device_base import KEEP_AFTER_EXPIRY, SLOW_DOWN_S, DeviceRecord, DeviceStore
from signoff.stores.group_commit import Tx

T = TypeVar("T")

_Q = sql.queries("sqlite")


def _when(value: float | None) -> datetime | None:
    return None if value is None else to_datetime(value)


def _record(row: tuple[Any, ...]) -> DeviceRecord:
    (id_, name, address, status, sub, role, created, expires, interval, polled, failures, gen,
     decided, used) = row  # fmt: skip
    return DeviceRecord(
        id=id_,
        name=name,
        address=address,
        status=status,
        sub=sub,
        role=role,
        created_at=to_datetime(created),
        expires_at=to_datetime(expires),
        interval_s=int(interval),
        last_poll_at=_when(polled),
        failures=int(failures),
        refresh_gen=int(gen),
        decided_at=_when(decided),
        used_at=_when(used),
    )


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class SqliteDevices(DeviceStore):
    """Mixed into :class:`~signoff.stores.sqlite.SqliteStore`, which provides the two
    primitives: ``_write`` (group commit) and ``_read``."""

    @abstractmethod
    async def _write(self, work: Callable[[Tx], T]) -> T: ...

    @abstractmethod
    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def _change(self, name: str, params: dict[str, Any]) -> DeviceRecord | None:
        def work(tx: Tx) -> DeviceRecord | None:
            # fetchall: a RETURNING statement is finished only once its rows are read
            rows = tx.conn.execute(_Q[name], params).fetchall()
            return _record(rows[0]) if rows else None

        return await self._write(work)

    def _select(self, name: str, params: dict[str, Any]) -> list[DeviceRecord]:
        rows = self._read(lambda c: c.execute(_Q[name], params).fetchall())
        return [_record(row) for row in rows]

    async def device_insert(
        self, device: DeviceRecord, device_code_hash: str, user_code_hash: str
    ) -> bool:
        now = device.created_at.timestamp()
        params = {
            "id": device.id,
            "device_code_hash": device_code_hash,
            "user_code_hash": user_code_hash,
            "name": device.name,
            "address": device.address,
            "status": device.status,
            "sub": device.sub,
            "role": device.role,
            "created_at": now,
            "expires_at": device.expires_at.timestamp(),
            "interval_s": device.interval_s,
            "last_poll_at": _ts(device.last_poll_at),
            "failures": device.failures,
            "refresh_gen": device.refresh_gen,
            "decided_at": _ts(device.decided_at),
            "used_at": _ts(device.used_at),
        }

        def work(tx: Tx) -> bool:
            before = (device.created_at - KEEP_AFTER_EXPIRY).timestamp()
            tx.conn.execute(_Q["device_purge"], {"before": before})
            taken = tx.conn.execute(
                _Q["device_code_taken"],
                {
                    "device_code_hash": device_code_hash,
                    "user_code_hash": user_code_hash,
                    "now": now,
                },
            ).fetchone()
            if taken is not None:
                return False
            tx.conn.execute(_Q["device_insert"], params)
            return True

        return await self._write(work)

    async def device_get(self, device_id: str) -> DeviceRecord | None:
        found = self._select("device_get", {"id": device_id})
        return found[0] if found else None

    async def device_by_user_code(self, user_code_hash: str, now: datetime) -> DeviceRecord | None:
        found = self._select(
            "device_by_user_code", {"user_code_hash": user_code_hash, "now": now.timestamp()}
        )
        return found[0] if found else None

    async def device_poll(
        self, device_code_hash: str, now: datetime
    ) -> tuple[DeviceRecord, bool] | None:
        at = now.timestamp()

        def work(tx: Tx) -> tuple[DeviceRecord, bool] | None:
            row = tx.conn.execute(
                _Q["device_by_code"], {"device_code_hash": device_code_hash}
            ).fetchone()
            if row is None:
                return None
            device_id, interval, last = row
            too_fast = last is not None and at - last < interval
            params = {
                "id": device_id,
                "now": at,
                "interval_s": interval + SLOW_DOWN_S if too_fast else interval,
            }
            rows = tx.conn.execute(_Q["device_polled"], params).fetchall()
            return _record(rows[0]), too_fast

        return await self._write(work)

    async def device_decide(
        self, device_id: str, approve: bool, sub: str, role: str, now: datetime
    ) -> DeviceRecord | None:
        status = "approved" if approve else "denied"
        params = {"id": device_id, "status": status, "sub": sub, "role": role}
        return await self._change("device_decide", {**params, "now": now.timestamp()})

    async def device_activate(
        self, device_id: str, now: datetime, expires_at: datetime
    ) -> DeviceRecord | None:
        params = {"id": device_id, "now": now.timestamp(), "expires_at": expires_at.timestamp()}
        return await self._change("device_activate", params)

    async def device_rotate(self, device_id: str, gen: int, now: datetime) -> DeviceRecord | None:
        params = {"id": device_id, "gen": gen, "now": now.timestamp()}
        return await self._change("device_rotate", params)

    async def device_revoke(self, device_id: str) -> DeviceRecord | None:
        return await self._change("device_revoke", {"id": device_id})

    async def device_failed_guess(self, now: datetime, limit: int) -> list[DeviceRecord]:
        params = {"now": now.timestamp(), "limit": limit}

        def work(tx: Tx) -> list[DeviceRecord]:
            rows = tx.conn.execute(_Q["device_count_failure"], params).fetchall()
            return [r for r in map(_record, rows) if r.status == "burned"]

        return await self._write(work)

    async def device_list(self, sub: str | None, limit: int = 200) -> list[DeviceRecord]:
        return self._select("device_list", {"sub": sub, "limit": limit})
