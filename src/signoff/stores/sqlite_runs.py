"""The SQLite store's durable runs' checkpoints and single-use tokens (see
:class:`signoff.stores.base.Store`); writes are units of the store's group commit."""

from __future__ import annotations

import sqlite3
import time
from abc import ABC
from collections.abc import Callable
from datetime import datetime
from typing import Any

from signoff.audit import iso
from signoff.models import RunRecord
from signoff.stores import sql
from signoff.stores.base import RunQuery
from signoff.stores.group_commit import Tx

_Q = sql.queries("sqlite")


class SqliteRuns(ABC):
    # provided by SqliteStore
    _write: Callable[[Callable[[Tx], Any]], Any]
    _read: Callable[[Callable[[sqlite3.Connection], Any]], Any]
    _rows: Callable[..., list[Any]]

    async def save_run(self, record: RunRecord) -> None:
        params = {
            "run_id": record.run_id,
            "owner": record.owner,
            "status": record.status,
            "updated_at": iso(record.updated_at),
            "body": record.model_dump_json(),
        }

        def work(tx: Tx) -> None:
            tx.conn.execute(_Q["save_run"], params)

        await self._write(work)

    async def get_run(self, owner: str, run_id: str) -> RunRecord | None:
        rows = self._rows("get_run", {"owner": owner, "run_id": run_id})
        return RunRecord.model_validate_json(rows[0][0]) if rows else None

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        return [
            RunRecord.model_validate_json(row[0]) for row in self._rows("list_runs", query.params())
        ]

    async def spend(self, key: str, until: datetime) -> bool:
        now = time.time()

        def work(tx: Tx) -> bool:
            tx.conn.execute(_Q["purge_spent"], {"now": now})
            cursor = tx.conn.execute(_Q["spend"], {"key": key, "until": until.timestamp()})
            return cursor.rowcount == 1

        spent: bool = await self._write(work)
        return spent

    async def is_spent(self, key: str) -> bool:
        return bool(self._rows("is_spent", {"key": key, "now": time.time()}))
