"""The store's part in session-aware limits (:mod:`signoff.history`).

Two reads make an agent's history: its requests that count (pending, or approved), and the
``executions`` ledger of the calls a history-using policy let run without asking (written
by :meth:`HistoryStore.record_execution`, only for such tools). Both are plain reads outside
any write transaction; a limit is evaluated on that snapshot.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from signoff.history import HistoryRow
from signoff.models import ApprovalRequest, Status
from signoff.types import JSONObject


@dataclass(frozen=True, slots=True)
class Execution:
    """A call a history-using policy let run without asking: one row of the ledger."""

    id: str
    tool: str
    agent_id: str
    run_id: str | None
    args: JSONObject
    at: datetime

    def args_text(self) -> str:
        return json.dumps(self.args, separators=(",", ":"), ensure_ascii=False)


def request_row(request: ApprovalRequest, since: datetime) -> HistoryRow | None:
    """The request as history, or None when it does not count: it ended without running
    (rejected, expired, cancelled, answered in the tool's place), or it was approved before
    ``since``. A pending one counts whatever its age, as in flight."""
    if request.status is Status.PENDING:
        in_flight = True
    elif request.status is Status.APPROVED and request.created_at >= since:
        in_flight = request.consumed_at is None
    else:
        return None
    return HistoryRow(
        tool=request.tool,
        run_id=request.run.run_id,
        at=request.created_at,
        args=request.final_args,
        in_flight=in_flight,
    )


def execution_row(
    tool: str, run_id: str | None, args: str, at: datetime, execution_id: str
) -> HistoryRow:
    return HistoryRow(tool, run_id, at, json.loads(args), execution_id=execution_id)


class HistoryStore(ABC):
    """The store's history operations (see the module docstring)."""

    @abstractmethod
    async def record_execution(self, execution: Execution) -> None:
        """Add a call that ran without asking to the ledger."""

    @abstractmethod
    async def history(self, agent: str, since: datetime) -> list[HistoryRow]:
        """The agent's history: its ledger rows at or after ``since``, its pending requests
        and its requests approved at or after ``since`` (see :func:`request_row`)."""

    @abstractmethod
    async def void_execution(self, execution_id: str, agent: str) -> bool:
        """Withdraw ``agent``'s ledger row (a reservation for a call that then asked, or
        was denied); False when it has no such row."""

    @abstractmethod
    async def ledger(self, since: datetime) -> list[Execution]:
        """Every agent's ledger rows at or after ``since``, oldest first (for a policy
        replay: what ran without asking, as it happened)."""
