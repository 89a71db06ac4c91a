"""Durable agent runs: each run's transcript, checkpointed after every step, and who may
read or write it. A run id belongs to the agent that runs it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from signoff import access
from signoff.errors import Conflict, Forbidden, NotFound
from signoff.models import Principal, RunRecord
from signoff.roles import RoleLadder
from signoff.stores.base import RunQuery, Store


class RunBook:
    """The service's runs (``service.runs``)."""

    def __init__(self, store: Store, roles: RoleLadder, now: Callable[[], datetime]) -> None:
        self.store = store
        self.roles = roles
        self._now = now

    async def save(self, record: RunRecord, principal: Principal) -> RunRecord:
        """Checkpoint a run. Only agents save runs, and only their own: a run id is the
        agent's own, so no agent can claim or overwrite another's run."""
        if principal.kind != "agent":
            raise Forbidden("only agents checkpoint runs")
        record = record.model_copy(
            update={"owner": principal.sub, "agent_id": principal.sub, "updated_at": self._now()}
        )
        await self.store.save_run(record)
        return record

    async def get(
        self, run_id: str, principal: Principal, *, owner: str | None = None
    ) -> RunRecord:
        """A run: an agent's own, or (for an approver) the one with that id, of ``owner``
        where several agents used the same id."""
        if principal.kind == "agent":
            owner = principal.sub
        else:
            access.require_reader(principal, self.roles)
        if owner is not None:
            record = await self.store.get_run(owner, run_id)
            if record is None:
                raise NotFound(f"no run {run_id}")
            return record
        found = await self.store.list_runs(RunQuery(run_id=run_id, limit=2))
        if not found:
            raise NotFound(f"no run {run_id}")
        if len(found) > 1:
            raise Conflict(f"several agents have a run {run_id}: name the agent")
        return found[0]

    async def list(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        owner: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        if principal.kind == "agent":
            owner = principal.sub
        else:
            access.require_reader(principal, self.roles)
        return await self.store.list_runs(RunQuery(status=status, owner=owner, limit=limit))
