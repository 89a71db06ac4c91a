"""The SQLite store's ledger of unasked runs (see :mod:`signoff.stores.history_store`): the
insert is a unit of the group commit; the reads are on the reader connection, outside any
write."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from signoff._util import to_datetime
from signoff.audit import iso
from signoff.history import HistoryRow
from signoff.stores import sql
from signoff.stores.cache import ParsedRequests
from signoff.stores.group_commit import Tx
from signoff.stores.history_store import Execution, HistoryStore, execution_row, request_row

_Q = sql.queries("sqlite")


class SqliteHistory(HistoryStore):
    # provided by SqliteStore
    _write: Callable[[Callable[[Tx], Any]], Any]
    _read: Callable[[Callable[[sqlite3.Connection], Any]], Any]
    _parsed: ParsedRequests

    async def record_execution(self, execution: Execution) -> None:
        params = {
            "id": execution.id,
            "tool": execution.tool,
            "agent_id": execution.agent_id,
            "run_id": execution.run_id,
            "args": execution.args_text(),
            "at": execution.at.timestamp(),
        }
        await self._write(lambda tx: tx.conn.execute(_Q["insert_execution"], params))

    async def history(self, agent: str, since: datetime) -> list[HistoryRow]:
        def read(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            ran = conn.execute(
                _Q["executions_since"], {"agent": agent, "since": since.timestamp()}
            ).fetchall()
            asked = conn.execute(
                _Q["counted_requests"], {"agent": agent, "since": iso(since)}
            ).fetchall()
            return ran, asked

        ran, asked = self._read(read)
        rows = [
            execution_row(tool, run, args, to_datetime(at), ex_id)
            for tool, run, args, at, ex_id in ran
        ]
        for version, body, request_id in asked:
            if row := request_row(self._parsed.parse(body, version, request_id), since):
                rows.append(row)
        return rows

    async def void_execution(self, execution_id: str, agent: str) -> bool:
        params = {"id": execution_id, "agent": agent}
        gone = await self._write(
            lambda tx: tx.conn.execute(_Q["delete_execution"], params).fetchall()
        )
        return bool(gone)

    async def ledger(self, since: datetime) -> list[Execution]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(_Q["ledger_since"], {"since": since.timestamp()}).fetchall()

        return [
            Execution(ex_id, tool, agent, run_id, json.loads(args), to_datetime(at))
            for ex_id, tool, agent, run_id, args, at in self._read(read)
        ]
