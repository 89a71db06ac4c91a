"""An agent's own history of calls, over the API: what a gate that talks to a server reads
for a session-aware limit (:mod:`signoff.history`), and where it records the calls such a
limit let run without asking. Only an agent, and only its own: the agent is its token's
subject, never a field of the body."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from signoff._util import new_id
from signoff.canonical import json_problem
from signoff.errors import Forbidden, InvalidArguments, NotFound
from signoff.history import HistoryRow, since
from signoff.models import Principal
from signoff.shadow import ShadowRecord
from signoff.stores.base import Store
from signoff.stores.history_store import Execution
from signoff.types import JSONObject

#: the longest window a limit may name (as the policy file's check): a year and a day
MAX_LOOKBACK_S = 366 * 86400.0


class HistoryBook:
    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    async def read(
        self, agent: Principal, lookback_s: float
    ) -> tuple[list[HistoryRow], datetime, datetime]:
        """The agent's calls in the last ``lookback_s`` seconds, as of now: (rows, now,
        since)."""
        _own(agent, "read a history of calls")
        if not 0 < lookback_s <= MAX_LOOKBACK_S:
            raise InvalidArguments(f"lookback_s must be above 0 and at most {MAX_LOOKBACK_S:g}")
        now = self._now()
        start = since(now, lookback_s)
        return await self._store.history(agent.sub, start), now, start

    async def record(
        self, agent: Principal, tool: str, args: JSONObject, run_id: str | None
    ) -> Execution:
        """Add a call that ran without asking to the agent's ledger."""
        _own(agent, "record a call")
        for what, value in (("tool", tool), ("args", args), ("run_id", run_id)):
            if (problem := json_problem(value)) is not None:
                raise InvalidArguments(f"{what}: {problem}")
        now = self._now()
        execution = Execution(new_id("ex"), tool, agent.sub, run_id, args, now)
        await self._store.record_execution(execution)
        return execution

    async def record_shadow(self, agent: Principal, record: ShadowRecord) -> ShadowRecord:
        """Audit what a shadow-mode tool's policy would have done with one of the agent's
        calls, as the agent's own gate judged it (:mod:`signoff.shadow`): the agent is its
        token's subject and the time the server's, whatever the record says. The record as
        audited."""
        _own(agent, "record a shadow-mode verdict")
        for what, value in (("args", record.args), ("run", record.run.model_dump(mode="json"))):
            if (problem := json_problem(value)) is not None:
                raise InvalidArguments(f"{what}: {problem}")
        run = record.run.model_copy(update={"agent_id": agent.sub})
        own = replace(record, run=run, at=self._now(), position=None)
        await self._store.append_audit(own.entry())
        return own

    async def void(self, agent: Principal, execution_id: str) -> None:
        """Withdraw one of the agent's own ledger rows; NotFound for any other."""
        _own(agent, "withdraw a call from its history")
        if not await self._store.void_execution(execution_id, agent.sub):
            raise NotFound(f"no call {execution_id!r} in your history")


def _own(principal: Principal, what: str) -> None:
    if principal.kind != "agent":
        raise Forbidden(f"only an agent may {what}: its own")
