"""The memory store's ledger of unasked runs (see :mod:`signoff.stores.history_store`)."""

from __future__ import annotations

import threading
from datetime import datetime

from signoff.history import HistoryRow
from signoff.stores.base import Versioned
from signoff.stores.history_store import Execution, HistoryStore, request_row


class MemoryHistory(HistoryStore):
    # provided by MemoryStore
    _lock: threading.Lock
    _requests: dict[str, Versioned]
    _executions: list[Execution]

    async def record_execution(self, execution: Execution) -> None:
        with self._lock:
            self._executions.append(execution)

    async def history(self, agent: str, since: datetime) -> list[HistoryRow]:
        with self._lock:
            ran = [e for e in self._executions if e.agent_id == agent and e.at >= since]
            requests = [v.request for v in self._requests.values()]
        rows = [HistoryRow(e.tool, e.run_id, e.at, e.args, execution_id=e.id) for e in ran]
        counted = (request_row(r, since) for r in requests if r.requested_by == agent)
        return rows + [row for row in counted if row is not None]

    async def void_execution(self, execution_id: str, agent: str) -> bool:
        with self._lock:
            kept = [
                e for e in self._executions if not (e.id == execution_id and e.agent_id == agent)
            ]
            found = len(kept) < len(self._executions)
            self._executions[:] = kept
        return found

    async def ledger(self, since: datetime) -> list[Execution]:
        with self._lock:
            found = [e for e in self._executions if e.at >= since]
        return sorted(found, key=lambda e: (e.at, e.id))
