"""The history a session-aware limit saw when a past call was made, rebuilt for a policy
replay (:mod:`signoff.replay`), so that a candidate's ``run_sum(...) > 500`` is judged
against what the agent had done by then, not against nothing (which would only ever
under-count) and not against today.

As the live gate reads it (:mod:`signoff.history`), the history at a time ``t`` is:

- the ledger's unasked runs made before ``t`` and inside the window;
- the requests made before ``t`` that could still run at ``t``: pending then (undecided,
  or decided after ``t``), in flight; or approved by ``t`` and made inside the window, in
  flight until they were used. Those that had ended without running by ``t`` (rejected,
  expired, cancelled, answered) do not count.

A request counts with its arguments as finally approved (an edit made after ``t`` is not
told apart): the store keeps a request as it is now, not as it was at every moment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from signoff.history import History, HistoryRow, since
from signoff.models import ApprovalRequest, Status
from signoff.stores.history_store import Execution
from signoff.types import JSONObject

__all__ = ["PastHistory"]


@dataclass(frozen=True, slots=True)
class _Asked:
    """What a request tells about its own past: when it was made, decided and used."""

    tool: str
    run_id: str | None
    args: JSONObject
    created_at: datetime
    decided_at: datetime | None
    consumed_at: datetime | None
    approved: bool

    def row(self, when: datetime, start: datetime) -> HistoryRow | None:
        """This request in the history at ``when`` (the window from ``start``), or None."""
        if self.created_at >= when:
            return None
        if self.decided_at is None or self.decided_at > when:
            in_flight = True  # pending then: counted whatever its age, as live
        elif self.approved and self.created_at >= start:
            in_flight = self.consumed_at is None or self.consumed_at > when
        else:
            return None
        return HistoryRow(self.tool, self.run_id, self.created_at, self.args, in_flight)


class PastHistory:
    """Every agent's requests and ledger rows, asked "what was the history at ``t``?"."""

    def __init__(self, requests: Iterable[ApprovalRequest], ledger: Iterable[Execution]) -> None:
        self._asked: dict[str, list[_Asked]] = defaultdict(list)
        self._ran: dict[str, list[Execution]] = defaultdict(list)
        for request in requests:
            self._asked[request.requested_by].append(
                _Asked(
                    tool=request.tool,
                    run_id=request.run.run_id,
                    args=request.final_args,
                    created_at=request.created_at,
                    decided_at=request.decided_at,
                    consumed_at=request.consumed_at,
                    approved=request.status is Status.APPROVED,
                )
            )
        for execution in ledger:
            self._ran[execution.agent_id].append(execution)

    def at(self, agent: str, run_id: str | None, when: datetime, lookback_s: float) -> History:
        """The history ``agent``'s call in run ``run_id`` at ``when`` would have been given."""
        start = since(when, lookback_s)
        rows = [
            HistoryRow(e.tool, e.run_id, e.at, e.args)
            for e in self._ran.get(agent, ())
            if start <= e.at < when
        ]
        counted = (asked.row(when, start) for asked in self._asked.get(agent, ()))
        rows.extend(row for row in counted if row is not None)
        return History(rows, run_id=run_id, now=when, since=start)
