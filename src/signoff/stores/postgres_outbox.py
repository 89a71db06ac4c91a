"""The PostgreSQL store's outbox (see :mod:`signoff.stores.outbox`). A claim is one
statement: ``UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …``, so
replicas claiming at once take different deliveries without waiting for each other, and a
lease that runs out (its replica died) makes the delivery claimable again."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import sql as pgsql

from signoff.stores import sql
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

_Q = sql.queries("postgres")


def deliveries_json(deliveries: Sequence[NewDelivery]) -> str | None:
    """A write's deliveries as the SQL functions take them (None: there are none)."""
    if not deliveries:
        return None
    return json.dumps([d.to_json() for d in deliveries], separators=(",", ":"))


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


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
        created_at=created.astimezone(UTC),
        due_at=due.astimezone(UTC),
        delivered_at=_utc(delivered),
        last_error=error,
        receipt=receipt_value(receipt),
        lease_until=_utc(lease),
    )


class PostgresOutbox(Outbox):
    # provided by PostgresStore
    _rows: Callable[..., Any]
    _connection: Callable[[], Any]

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
        params = {"owner": owner, "now": now, "lease_until": lease_until, "limit": limit}
        params |= {"skip": list(skip), "only": only}
        rows = await self._rows("claim_deliveries", params)
        return sorted((delivery(row) for row in rows), key=lambda d: (d.due_at, d.seq))

    async def _update(self, name: str, params: dict[str, Any]) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(_Q[name], params)
            return bool(cursor.rowcount == 1)

    async def finish_delivery(
        self, delivery_id: str, owner: str, now: datetime, receipt: JSONObject | None
    ) -> bool:
        params = {"id": delivery_id, "owner": owner, "now": now, "receipt": receipt_text(receipt)}
        return await self._update("finish_delivery", params)

    async def fail_delivery(
        self, delivery_id: str, owner: str, error: str, retry_at: datetime | None
    ) -> bool:
        params = {"id": delivery_id, "owner": owner, "error": error, "retry_at": retry_at}
        return await self._update("fail_delivery", params)

    async def receipts(self, request_id: str, channel: str, before_seq: int) -> list[JSONObject]:
        params = {"request_id": request_id, "channel": channel, "before": before_seq}
        found = [receipt_value(row[0]) for row in await self._rows("receipts", params)]
        return [r for r in found if r is not None]

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        rows = await self._rows("get_delivery", {"id": delivery_id})
        return delivery(rows[0]) if rows else None

    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        conditions = [
            pgsql.SQL("{} = {}").format(pgsql.Identifier(column), pgsql.Placeholder(column))
            for column, _ in query.filters()
        ]
        params: dict[str, Any] = dict(query.filters())
        params["limit"] = query.limit
        if query.before is not None:
            conditions.append(pgsql.SQL("seq < {}").format(pgsql.Placeholder("before")))
            params["before"] = query.before
        where = pgsql.SQL("WHERE ") + pgsql.SQL(" AND ").join(conditions)
        statement = pgsql.SQL(_Q["list_deliveries"]).format(
            where=where if conditions else pgsql.SQL("")
        )
        async with self._connection() as conn:
            rows = await (await conn.execute(statement, params)).fetchall()
        return [delivery(row) for row in rows]

    async def retry_delivery(self, delivery_id: str, now: datetime) -> Delivery | None:
        rows = await self._rows("retry_delivery", {"id": delivery_id, "now": now})
        if rows:
            return delivery(rows[0])
        return await self.get_delivery(delivery_id)

    async def delivery_counts(self) -> dict[tuple[str, str], int]:
        rows = await self._rows("delivery_counts")
        return {(channel, status): int(n) for channel, status, n in rows}

    async def next_delivery_due(self) -> datetime | None:
        rows = await self._rows("next_delivery_due")
        return None if not rows or rows[0][0] is None else rows[0][0].astimezone(UTC)
