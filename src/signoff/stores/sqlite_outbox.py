"""The SQLite store's outbox (see :mod:`signoff.stores.outbox`). Claims and outcomes are
units of the store's group commit, so they take SQLite's write lock like every other write
and are atomic across processes sharing the file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from signoff._util import to_datetime
from signoff.stores import sql
from signoff.stores.group_commit import Tx
from signoff.stores.outbox import (
    Delivery,
    DeliveryQuery,
    DeliveryStatus,
    NewDelivery,
    Outbox,
    receipt_text,
    receipt_value,
)
from signoff.types import JSONObject

T = TypeVar("T")
_Q = sql.queries("sqlite")
_COLUMNS = (
    "id, seq, request_id, channel, type, step, status, attempts, created_at, due_at, "
    "delivered_at, last_error, receipt, lease_until"
)


def insert_deliveries(tx: Tx, deliveries: Sequence[NewDelivery]) -> None:
    """Inside the write that announces them (the caller's unit of work)."""
    for new in deliveries:
        tx.conn.execute(
            _Q["insert_delivery"],
            {
                "id": new.id,
                "request_id": new.request_id,
                "channel": new.channel,
                "type": new.type,
                "step": new.step,
                "created_at": new.created_at.timestamp(),
            },
        )


def delivery(row: Sequence[Any]) -> Delivery:
    (id_, seq, request_id, channel, type_, step, status, attempts, created, due) = row[:10]
    delivered, error, receipt, lease = row[10:]
    return Delivery(
        id=id_,
        seq=seq,
        request_id=request_id,
        channel=channel,
        type=type_,
        step=step,
        status=DeliveryStatus(status),
        attempts=attempts,
        created_at=to_datetime(created),
        due_at=to_datetime(due),
        delivered_at=None if delivered is None else to_datetime(delivered),
        last_error=error,
        receipt=receipt_value(receipt),
        lease_until=None if lease is None else to_datetime(lease),
    )


class SqliteOutbox(Outbox):
    # provided by SqliteStore
    _write: Callable[[Callable[[Tx], Any]], Any]
    _read: Callable[[Callable[[sqlite3.Connection], Any]], Any]
    _rows: Callable[..., list[Any]]

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
        params = {
            "owner": owner,
            "now": now.timestamp(),
            "lease_until": lease_until.timestamp(),
            "limit": limit,
            "skip": json.dumps(list(skip)),
            "only": only,
        }

        def work(tx: Tx) -> list[Any]:
            return tx.conn.execute(_Q["claim_deliveries"], params).fetchall()

        rows: list[Any] = await self._write(work)
        return sorted((delivery(row) for row in rows), key=lambda d: (d.due_at, d.seq))

    async def _update(self, name: str, params: dict[str, Any]) -> bool:
        def work(tx: Tx) -> bool:
            return tx.conn.execute(_Q[name], params).rowcount == 1

        done: bool = await self._write(work)
        return done

    async def finish_delivery(
        self, delivery_id: str, owner: str, now: datetime, receipt: JSONObject | None
    ) -> bool:
        params = {
            "id": delivery_id,
            "owner": owner,
            "now": now.timestamp(),
            "receipt": receipt_text(receipt),
        }
        return await self._update("finish_delivery", params)

    async def fail_delivery(
        self, delivery_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> bool:
        params = {
            "id": delivery_id,
            "owner": owner,
            "error": error,
            "retry_at": None if retry_at is None else retry_at.timestamp(),
        }
        return await self._update("fail_delivery", params)

    async def receipts(self, request_id: str, channel: str, before_seq: int) -> list[JSONObject]:
        params = {"request_id": request_id, "channel": channel, "before": before_seq}
        found = [receipt_value(row[0]) for row in self._rows("receipts", params)]
        return [r for r in found if r is not None]

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        rows = self._rows("get_delivery", {"id": delivery_id})
        return delivery(rows[0]) if rows else None

    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": query.limit}
        for column, value in query.filters():
            where.append(f"{column} = :{column}")
            params[column] = value
        if query.before is not None:
            where.append("seq < :before")
            params["before"] = query.before
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # the column names come from DeliveryQuery.filters: fixed strings, never input
        statement = f"SELECT {_COLUMNS} FROM deliveries {clause} ORDER BY seq DESC LIMIT :limit"
        rows = self._read(lambda c: c.execute(statement, params).fetchall())
        return [delivery(row) for row in rows]

    async def retry_delivery(self, delivery_id: str, now: datetime) -> Delivery | None:
        params = {"id": delivery_id, "now": now.timestamp()}

        def work(tx: Tx) -> Any:
            row = tx.conn.execute(_Q["retry_delivery"], params).fetchone()
            if row is None:
                row = tx.conn.execute(_Q["get_delivery"], {"id": delivery_id}).fetchone()
            return row

        row = await self._write(work)
        return None if row is None else delivery(row)

    async def delivery_counts(self) -> dict[tuple[str, str], int]:
        rows = self._rows("delivery_counts")
        return {(channel, status): int(n) for channel, status, n in rows}

    async def next_delivery_due(self) -> datetime | None:
        rows = self._rows("next_delivery_due")
        return None if not rows or rows[0][0] is None else to_datetime(rows[0][0])
