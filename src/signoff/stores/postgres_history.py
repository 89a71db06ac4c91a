"""The PostgreSQL store's ledger of unasked runs (see :mod:`signoff.stores.history_store`):
one autocommit statement each, outside any transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from signoff.history import HistoryRow
from signoff.stores.cache import ParsedRequests
from signoff.stores.history_store import Execution, HistoryStore, execution_row, request_row


class PostgresHistory(HistoryStore):
    # provided by PostgresStore
    _rows: Callable[..., Any]
    _parsed: ParsedRequests

    async def record_execution(self, execution: Execution) -> None:
        await self._rows(
            "insert_execution",
            {
                "id": execution.id,
                "tool": execution.tool,
                "agent_id": execution.agent_id,
                "run_id": execution.run_id,
                "args": execution.args_text(),
                "at": execution.at,
            },
        )

    async def history(self, agent: str, since: datetime) -> list[HistoryRow]:
        params = {"agent": agent, "since": since}
        ran = await self._rows("executions_since", params)
        asked = await self._rows("counted_requests", params)
        rows = [
            execution_row(tool, run, args, at.astimezone(UTC), ex_id)
            for tool, run, args, at, ex_id in ran
        ]
        for version, body, request_id in asked:
            if row := request_row(self._parsed.parse(body, version, request_id), since):
                rows.append(row)
        return rows

    async def void_execution(self, execution_id: str, agent: str) -> bool:
        params = {"id": execution_id, "agent": agent}
        return bool(await self._rows("delete_execution", params))

    async def ledger(self, since: datetime) -> list[Execution]:
        rows = await self._rows("ledger_since", {"since": since})
        return [
            Execution(ex_id, tool, agent, run_id, json.loads(args), at.astimezone(UTC))
            for ex_id, tool, agent, run_id, args, at in rows
        ]
