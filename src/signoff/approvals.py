"""What a Gate talks to: the approval service in this process (:class:`LocalApprovals`), or
a server over HTTP (:class:`signoff.remote.RemoteApprovals`).

Both speak the service's verbs, so a Gate behaves the same whichever it was given. The
difference is identity: in process, the agent is the run's ``agent_id`` and an approver is a
:class:`Principal` the calling code vouches for; over HTTP, both come from the tokens the
gate holds, and the server verifies them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Literal

from signoff import history
from signoff._util import new_id
from signoff.errors import NotFound, UsageError
from signoff.events import Event
from signoff.follow import Feed, OnOpen
from signoff.models import (
    ApprovalRequest,
    DecisionKind,
    Principal,
    RequestSpec,
    Run,
    RunRecord,
    ToolCall,
)
from signoff.service import ApprovalService
from signoff.shadow import ShadowRecord
from signoff.stores.history_store import Execution
from signoff.types import JSONObject


class Approvals(ABC):
    """The service's verbs, as a gate's agent (and, for its approver verbs, its approver)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect. Called once, lazily, before the first use."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Disconnect."""

    @abstractmethod
    async def submit(self, spec: RequestSpec) -> ApprovalRequest: ...

    @abstractmethod
    async def wait(self, request_id: str, run: Run) -> ApprovalRequest:
        """Block until the request is no longer pending (it expires on its own)."""

    @abstractmethod
    async def consume(self, request: ApprovalRequest) -> ApprovalRequest: ...

    @abstractmethod
    async def record_outcome(
        self,
        request: ApprovalRequest,
        status: Literal["succeeded", "failed"],
        detail: Any,
    ) -> ApprovalRequest: ...

    @abstractmethod
    async def cancel(self, request_id: str, run: Run, reason: str | None) -> ApprovalRequest: ...

    @abstractmethod
    async def get(self, request_id: str) -> ApprovalRequest: ...

    @abstractmethod
    async def pending(self) -> list[ApprovalRequest]: ...

    @abstractmethod
    async def decide(
        self,
        request_id: str,
        by: Principal | None,
        decision: DecisionKind,
        reason: str | None,
        modified_args: JSONObject | None,
        seen_digest: str | None = None,
        grant: JSONObject | None = None,
        response: Any = None,
    ) -> ApprovalRequest: ...

    @abstractmethod
    def follow(self, *, after: int | None = None, on_open: OnOpen | None = None) -> Feed[Event]:
        """The live events, as an approver sees them (see :mod:`signoff.follow`)."""

    async def record_shadow(self, record: ShadowRecord) -> None:
        """Audit a shadow-mode call's verdict (:mod:`signoff.shadow`): in this process's
        store, or on the server (``POST /v1/shadow-verdicts``)."""
        raise UsageError("this gate cannot record shadow-mode verdicts")

    async def history(self, call: ToolCall, lookback_s: float) -> history.History:
        """The agent's history for a session-aware limit (:mod:`signoff.history`), as of
        now: from the store in this process, or from the server (``GET /v1/history``). One
        that cannot be read makes the limit fail closed (it asks)."""
        raise UsageError("this gate cannot read the agent's history of calls")

    async def record_execution(self, call: ToolCall) -> str:
        """Add a call to the ledger of calls a session-aware limit lets run without asking
        (a reservation, made before the limit is judged); the row's id."""
        raise UsageError("this gate cannot record the agent's history of calls")

    async def void_execution(self, call: ToolCall, execution_id: str) -> None:
        """Withdraw a reservation: the call asked, or was denied, instead of running."""
        raise UsageError("this gate cannot record the agent's history of calls")

    @abstractmethod
    async def save_run(self, record: RunRecord) -> RunRecord: ...

    @abstractmethod
    async def get_run(self, run_id: str, agent_id: str | None = None) -> RunRecord | None:
        """The agent's run, or None when there is none (a missing run is not an error here).
        Over HTTP the agent is the token's subject, whatever ``agent_id`` says; in process,
        without ``agent_id``, the one run with that id."""


class LocalApprovals(Approvals):
    """The approval service in this process (the embedded default)."""

    def __init__(self, service: ApprovalService) -> None:
        self.service = service
        #: the identity trusted in-process code reads requests as
        self._reader = Principal(sub="local", role=service.roles.highest, kind="approver")

    async def start(self) -> None:
        await self.service.start()

    async def aclose(self) -> None:
        await self.service.aclose()

    @staticmethod
    def _agent(run: Run) -> Principal:
        return Principal(sub=run.agent_id, kind="agent")

    async def submit(self, spec: RequestSpec) -> ApprovalRequest:
        run = spec.run if spec.run is not None else Run()
        # in process, the tool's policy is the operator's own code
        created = await self.service.submit(spec, self._agent(run), from_operator=True)
        return created.request

    async def wait(self, request_id: str, run: Run) -> ApprovalRequest:
        return await self.service.wait(request_id, self._agent(run))

    async def consume(self, request: ApprovalRequest) -> ApprovalRequest:
        return await self.service.consume(request.id, self._agent(request.run))

    async def record_outcome(
        self,
        request: ApprovalRequest,
        status: Literal["succeeded", "failed"],
        detail: Any,
    ) -> ApprovalRequest:
        return await self.service.record_outcome(
            request.id, self._agent(request.run), status, detail
        )

    async def cancel(self, request_id: str, run: Run, reason: str | None) -> ApprovalRequest:
        return await self.service.cancel(request_id, self._agent(run), reason)

    async def get(self, request_id: str) -> ApprovalRequest:
        return await self.service.get(request_id, self._reader)

    async def pending(self) -> list[ApprovalRequest]:
        return await self.service.pending(self._reader)

    def follow(self, *, after: int | None = None, on_open: OnOpen | None = None) -> Feed[Event]:
        return self.service.follow(after=after, on_open=on_open)

    async def record_shadow(self, record: ShadowRecord) -> None:
        # the service's clock, as for every other audit event it writes
        await self.service.store.append_audit(replace(record, at=self.service.now()).entry())

    async def history(self, call: ToolCall, lookback_s: float) -> history.History:
        now = self.service.now()
        start = history.since(now, lookback_s)
        rows = await self.service.store.history(call.run.agent_id, start)
        return history.History(rows, run_id=call.run.run_id, now=now, since=start)

    async def record_execution(self, call: ToolCall) -> str:
        run = call.run
        execution = Execution(
            id=new_id("ex"),
            tool=call.tool_name,
            agent_id=run.agent_id,
            run_id=run.run_id,
            args=call.args_json,
            at=self.service.now(),
        )
        await self.service.store.record_execution(execution)
        return execution.id

    async def void_execution(self, call: ToolCall, execution_id: str) -> None:
        await self.service.store.void_execution(execution_id, call.run.agent_id)

    async def save_run(self, record: RunRecord) -> RunRecord:
        return await self.service.runs.save(record, self._agent(Run(agent_id=record.agent_id)))

    async def get_run(self, run_id: str, agent_id: str | None = None) -> RunRecord | None:
        who = self._reader if agent_id is None else self._agent(Run(agent_id=agent_id))
        try:
            return await self.service.runs.get(run_id, who)
        except NotFound:
            return None

    async def decide(
        self,
        request_id: str,
        by: Principal | None,
        decision: DecisionKind,
        reason: str | None,
        modified_args: JSONObject | None,
        seen_digest: str | None = None,
        grant: JSONObject | None = None,
        response: Any = None,
    ) -> ApprovalRequest:
        if by is None:
            raise UsageError(
                "an embedded gate needs to know who decides: pass by=Principal(sub=…, role=…)"
            )
        return await self.service.decide(
            request_id,
            by,
            decision,
            reason=reason,
            modified_args=modified_args,
            seen_digest=seen_digest,
            via="embedded",
            grant=grant,
            response=response,
        )
