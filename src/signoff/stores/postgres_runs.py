"""The PostgreSQL store's durable runs' checkpoints and single-use tokens (see
:class:`signoff.stores.base.Store`)."""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from signoff.models import RunRecord
from signoff.stores import sql
from signoff.stores.base import RunQuery

_Q = sql.queries("postgres")


class PostgresRuns(ABC):
    # provided by PostgresStore
    _rows: Callable[..., Any]
    _connection: Callable[[], Any]

    async def save_run(self, record: RunRecord) -> None:
        params = {
            "run_id": record.run_id,
            "owner": record.owner,
            "status": record.status,
            "updated_at": record.updated_at,
            "body": record.model_dump_json(),
        }
        await self._rows("save_run", params)

    async def get_run(self, owner: str, run_id: str) -> RunRecord | None:
        rows = await self._rows("get_run", {"owner": owner, "run_id": run_id})
        return RunRecord.model_validate_json(rows[0][0]) if rows else None

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        rows = await self._rows("list_runs", query.params())
        return [RunRecord.model_validate_json(row[0]) for row in rows]

    async def spend(self, key: str, until: datetime) -> bool:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_Q["purge_spent"])
            cursor = await conn.execute(_Q["spend"], {"key": key, "until": until.astimezone(UTC)})
            return bool(cursor.rowcount == 1)

    async def is_spent(self, key: str) -> bool:
        return bool(await self._rows("is_spent", {"key": key}))
