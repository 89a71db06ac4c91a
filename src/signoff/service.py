"""The ApprovalService: the one place where requests change state.

    submit ─▶ pending ─▶ decide ─┬▶ approved ─▶ consume (once) ─▶ record outcome
                                 └▶ rejected
              pending ─▶ expired (sweeper, or anyone reading it after expires_at)
              pending ─▶ cancelled (the agent that made it)

Every change is a pure function of the stored request applied by :meth:`Store.transition`
under the store's write lock, with its audit event and live event in the same transaction,
then published on the bus. Whoever acts is a :class:`Principal` that the caller has
authenticated; nothing here trusts identity from a payload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from signoff._util import MAX_DETAIL_CHARS, jsonable, new_id, stop_task, to_datetime
from signoff.audit import AuditEntry, AuditEvent, ChainCheck, Verification
from signoff.bus.base import Bus
from signoff.bus.memory import MemoryBus
from signoff.bus.replay import RequestEvents, StoreEvents
from signoff.canonical import digest, json_problem, storable
from signoff.config import Config
from signoff.errors import (
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidEdit,
    NotFound,
    PolicyDenied,
    SignoffError,
)
from signoff.events import Event, EventType
from signoff.follow import Feed, OnOpen, follow
from signoff.jsonschema_check import check_schema, schema_errors
from signoff.models import (
    SYSTEM,
    ApprovalRequest,
    Decision,
    DecisionKind,
    OutcomeRecord,
    Page,
    Principal,
    RequestSpec,
    Run,
    RunRecord,
    Status,
    ToolCall,
)
from signoff.policy import Terms, VerdictKind, floor
from signoff.stores.base import Change, Created, ListQuery, RunQuery, Store
from signoff.types import Clock, JSONObject

log = logging.getLogger(__name__)

#: how long the sweeper sleeps at most between looks for expired requests
SWEEP_INTERVAL_S = 1.0
#: audit events read and hashed at a time when verifying the chain
VERIFY_PAGE = 5000


class ApprovalService:
    """Submit, decide, wait, consume, record outcomes, cancel and expire approval requests."""

    def __init__(
        self,
        store: Store,
        bus: Bus | None = None,
        *,
        config: Config | None = None,
        clock: Clock = time.time,
        sweep: bool = True,
    ) -> None:
        self.store = store
        # without a bus of its own the service hears only this process: signoff.connect(url)
        # gives the one that also hears the other processes sharing the store
        self.bus = bus if bus is not None else MemoryBus()
        self.config = config if config is not None else Config()
        self.roles = self.config.roles
        self._clock = clock
        self._sweep = sweep
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False
        self._verifying: asyncio.Future[Verification] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await self.store.start()
        await self.bus.start(self.store)
        if self._sweep:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="signoff-sweeper")
        self._started = True

    async def aclose(self) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None
        await self.bus.aclose()
        await self.store.aclose()
        self._started = False

    async def __aenter__(self) -> ApprovalService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def now(self) -> datetime:
        return to_datetime(self._clock())

    # -- the agent's side -----------------------------------------------------------------

    async def submit(
        self, spec: RequestSpec, principal: Principal, *, from_operator: bool = False
    ) -> Created:
        """Create a request, or return the existing one for the same idempotency key.

        The operator's policy for the tool is a floor on every submission (CONTRACT §3): its
        ``deny`` refuses the call (:class:`PolicyDenied`), its reason template replaces the
        agent's text, and its terms are the floor under the proposed ones (:func:`floor`).
        ``from_operator`` marks a proposal from the operator's own code (an embedded gate).
        """
        if principal.kind != "agent":
            raise Forbidden("only agents create approval requests")
        for what, value in (
            ("args", spec.args),
            ("context", spec.context),
            ("reason", spec.reason),
            ("run", spec.run.model_dump(mode="python") if spec.run else None),
            ("args_schema", spec.args_schema),
            ("tool", spec.tool),
            ("tool_call_id", spec.tool_call_id),
        ):
            if (problem := json_problem(value)) is not None:
                raise InvalidArguments(f"{what}: {problem}")
        proposed = spec.policy
        if proposed is not None and proposed.min_role not in (None, *self.roles.roles):
            raise InvalidArguments(
                f"unknown min_role {proposed.min_role!r}; the roles are {list(self.roles.roles)}"
            )
        if spec.args_schema is not None and (problem := await check_schema(spec.args_schema)):
            raise InvalidArguments(f"args_schema is not a valid JSON schema: {problem}")
        # an agent's run is its own: whatever it wrote, the agent is its token's subject
        run = (spec.run or Run()).model_copy(update={"agent_id": principal.sub})
        operator = self.config.operator_policy(spec.tool)
        reason = spec.reason
        if operator is not None:
            call = ToolCall(spec.tool, spec.args, tool_call_id=spec.tool_call_id, run=run)
            if (await operator.verdict(call)).kind is VerdictKind.DENY:
                message = await operator.reject_text(call)
                raise PolicyDenied(message or f"the policy for {spec.tool!r} refuses this call")
            reason = await operator.reason_text(call) or reason
        floored = floor(
            Terms(
                min_role=proposed.min_role if proposed else None,
                quorum=proposed.quorum if proposed else None,
                timeout_s=proposed.timeout_s if proposed else None,
                editable=None
                if proposed is None or proposed.editable is None
                else tuple(proposed.editable),
                allow_self_approval=proposed.allow_self_approval if proposed else None,
                risk=spec.risk,
                channels=tuple(spec.channels),
            ),
            None if operator is None else operator.terms(),
            roles=self.roles,
            default_timeout_s=self.config.default_timeout_s,
            proposer_is_operator=from_operator,
        )
        snapshot, risk = floored.policy, floored.risk
        key = spec.idempotency_key
        if key is None and run.run_id and spec.tool_call_id:
            key = f"{run.run_id}/{spec.tool_call_id}"
        now = self.now()
        args_digest = digest(spec.args)
        request = ApprovalRequest(
            id=new_id("apr"),
            status=Status.PENDING,
            tool=spec.tool,
            args=spec.args,
            final_args=spec.args,
            tool_call_id=spec.tool_call_id,
            run=run,
            requested_by=principal.sub,
            reason=reason,
            context=spec.context,
            risk=risk,
            policy=snapshot,
            created_at=now,
            expires_at=now + timedelta(seconds=snapshot.timeout_s),
            args_schema=spec.args_schema,
            args_digest=args_digest,
            # scoped to the agent, so one agent's key never finds another agent's request
            idempotency_key=None if key is None else f"{principal.sub}\x1f{key}",
            channels=floored.channels,
        )
        audit = AuditEntry(
            type="request.created",
            request_id=request.id,
            actor=principal.audit_actor(),
            at=now,
            via="agent",
            data={
                "tool": request.tool,
                "args": request.args,
                "args_digest": args_digest,
                "tool_call_id": request.tool_call_id,
                "run": request.run.model_dump(mode="json"),
                "reason": request.reason,
                "context": jsonable(request.context),
                "risk": request.risk.value,
                "policy": snapshot.model_dump(mode="json"),
                "expires_at": request.expires_at.isoformat(),
            },
        )
        created = await self.store.create(request, audit, [EventType.CREATED])
        if not created.created:
            existing = created.request
            if existing.tool != spec.tool or digest(existing.args) != args_digest:
                raise Conflict(
                    "this idempotency key was used before for a different call",
                    request_id=existing.id,
                )
        await self.bus.publish(created.events)
        return created

    async def get(self, request_id: str, principal: Principal) -> ApprovalRequest:
        request = await self._current(request_id)
        await self._check_can_read(request, principal)
        return request

    async def wait(
        self, request_id: str, principal: Principal, timeout: float | None = None
    ) -> ApprovalRequest:
        """Return as soon as the request is no longer pending, or after ``timeout`` seconds.

        Follows the request before reading it, so a decision landing in between is never
        missed; expires the request itself when its time is up, so no sweeper is needed to
        end a wait.
        """
        async with follow(RequestEvents(self.bus, request_id)) as changes:
            request = await self._current(request_id)
            await self._check_owner(request, principal, "wait on")
            deadline = None if timeout is None else self._clock() + timeout
            while request.status is Status.PENDING:
                expires = request.expires_at.timestamp()
                # keep only what the wait needs: many calls may be waiting at once
                del request
                now = self._clock()
                until = expires if deadline is None else min(expires, deadline)
                if now >= until:
                    if now >= expires:
                        request = await self.expire(request_id)
                        continue
                    return await self._current(request_id)
                await changes.next(until - now)
                request = await self._current(request_id)
        return request

    def follow(self, *, after: int | None = None, on_open: OnOpen | None = None) -> Feed[Event]:
        """Every live event after ``after`` (None: from when the feed opens), resumed across
        drops; ``on_open`` runs at every opening (see :mod:`signoff.follow`)."""
        return follow(StoreEvents(self.store, self.bus), after=after, on_open=on_open)

    async def cancel(
        self, request_id: str, principal: Principal, reason: str | None = None
    ) -> ApprovalRequest:
        if (problem := json_problem(reason)) is not None:
            raise InvalidArguments(f"reason: {problem}")

        def apply(req: ApprovalRequest) -> Change:
            now = self.now()
            if (refusal := self._owner_refusal(req, principal, "cancel", now)) is not None:
                return refusal
            if (late := self._expired_change(req, now, principal, "cancel")) is not None:
                return late
            if req.status.terminal:
                return self._refuse(req, principal, now, "cancel", Conflict(_no_longer(req)))
            new = req.model_copy(
                update={"status": Status.CANCELLED, "decided_at": now, "cancel_reason": reason}
            )
            entry = AuditEntry(
                "request.cancelled",
                req.id,
                principal.audit_actor(),
                now,
                "agent",
                {"reason": reason},
            )
            return Change(new, [entry], [EventType.CANCELLED])

        return await self._transition(request_id, apply)

    async def consume(self, request_id: str, principal: Principal) -> ApprovalRequest:
        """Claim an approved request for execution. Succeeds once; every later call is a
        Conflict, so the tool runs at most once per approval, whatever retries."""

        def apply(req: ApprovalRequest) -> Change:
            now = self.now()
            if (refusal := self._owner_refusal(req, principal, "consume", now)) is not None:
                return refusal
            if req.status is not Status.APPROVED:
                error = Conflict(f"the request is {req.status.value}, not approved")
                return self._refuse(req, principal, now, "consume", error)
            if req.consumed_at is not None:
                error = Conflict("this approval was already used to run the tool")
                return self._refuse(req, principal, now, "consume", error)
            new = req.model_copy(update={"consumed_at": now})
            entry = AuditEntry(
                "request.consumed",
                req.id,
                principal.audit_actor(),
                now,
                "agent",
                {"args_digest": req.args_digest, "final_args": req.final_args},
            )
            return Change(new, [entry], [EventType.CONSUMED])

        return await self._transition(request_id, apply)

    async def record_outcome(
        self,
        request_id: str,
        principal: Principal,
        status: Literal["succeeded", "failed"],
        detail: Any = None,
    ) -> ApprovalRequest:
        if status not in ("succeeded", "failed"):
            raise InvalidArguments("outcome status must be 'succeeded' or 'failed'")
        detail = _bounded(storable(jsonable(detail)))

        def apply(req: ApprovalRequest) -> Change:
            now = self.now()
            if (refusal := self._owner_refusal(req, principal, "report on", now)) is not None:
                return refusal
            if req.status is not Status.APPROVED:
                error = Conflict(f"the request is {req.status.value}; only an approved call runs")
                return self._refuse(req, principal, now, "record an outcome", error)
            if req.outcome is not None:
                error = Conflict("an outcome was already recorded for this request")
                return self._refuse(req, principal, now, "record an outcome", error)
            update: dict[str, Any] = {
                "outcome": OutcomeRecord(status=status, detail=detail, at=now)
            }
            if req.consumed_at is None:
                update["consumed_at"] = now
            entry = AuditEntry(
                "request.outcome",
                req.id,
                principal.audit_actor(),
                now,
                "agent",
                {"status": status, "detail": detail},
            )
            return Change(req.model_copy(update=update), [entry], [EventType.OUTCOME])

        return await self._transition(request_id, apply)

    # -- the approver's side --------------------------------------------------------------

    async def list_requests(self, query: ListQuery, principal: Principal) -> Page:
        self._require_known_role(principal)
        if principal.kind == "agent":
            # an agent sees its own requests and nothing else
            query = ListQuery(
                status=query.status,
                tool=query.tool,
                agent_id=query.agent_id,
                risk=query.risk,
                requested_by=principal.sub,
                limit=query.limit,
                cursor=query.cursor,
            )
        return await self.store.list_requests(query)

    async def pending(self, principal: Principal) -> list[ApprovalRequest]:
        """Every pending request the principal may see (not past its expiry), newest first."""
        found: list[ApprovalRequest] = []
        cursor: str | None = None
        while True:
            page = await self.list_requests(
                ListQuery(status=Status.PENDING.value, limit=200, cursor=cursor), principal
            )
            now = self.now()
            found.extend(r for r in page.items if r.expires_at > now)
            cursor = page.next_cursor
            if cursor is None:
                return found

    async def decide(
        self,
        request_id: str,
        principal: Principal,
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        modified_args: JSONObject | None = None,
        seen_digest: str | None = None,
        via: str = "api",
    ) -> ApprovalRequest:
        """Approve or reject. Raises Forbidden (agent, role too low, own request), Conflict
        (no longer pending, already approved by this approver, or ``seen_digest`` — the
        ``args_digest`` the approver was shown — no longer the arguments that would run),
        InvalidEdit; each refusal is audited and leaves the request as it was.

        Edits are checked against the tool's schema before the write, in a worker thread
        (the schema may be an agent's); the write then only runs if the arguments it was
        checked against are still the request's."""
        try:
            kind = DecisionKind(decision)
        except ValueError as exc:
            raise InvalidArguments("decision must be 'approve' or 'reject'") from exc
        if kind is DecisionKind.REJECT:
            if modified_args:
                raise InvalidEdit("a rejection cannot carry modified arguments")
            if not (reason and reason.strip()):
                raise InvalidArguments("a rejection needs a reason, for the model and the audit")
        if modified_args is not None and not isinstance(modified_args, dict):
            raise InvalidEdit("modified_args must be a JSON object")
        for what, value in (("modified_args", modified_args), ("reason", reason)):
            if (problem := json_problem(value)) is not None:
                raise InvalidArguments(f"{what}: {problem}")
        checked_digest: str | None = None
        edit_problem: str | None = None
        if modified_args:
            current = await self._current(request_id)
            if self._refusal(current, principal, kind, self.now()) is None:
                edit_problem = await self._edit_problem(current, modified_args)
            checked_digest = current.args_digest

        def apply(req: ApprovalRequest) -> Change:
            now = self.now()
            verb = kind.value

            def refuse(error: SignoffError) -> Change:
                return self._refuse(req, principal, now, verb, error, via=via)

            if principal.kind != "approver":
                return refuse(Forbidden("agents may not decide approval requests"))
            if (late := self._expired_change(req, now, principal, verb, via=via)) is not None:
                return late
            if (error := self._refusal(req, principal, kind, now)) is not None:
                return refuse(error)
            if seen_digest is not None and seen_digest != req.args_digest:
                return refuse(_changed(req))
            if edit_problem is not None:
                return refuse(InvalidEdit(edit_problem))
            if modified_args and req.args_digest != checked_digest:
                return refuse(_changed(req))
            at = now
            if kind is DecisionKind.REJECT:
                record = Decision(
                    decision=kind,
                    by=principal.sub,
                    role=principal.role,
                    reason=reason,
                    at=at,
                    via=via,
                )
                new = req.model_copy(
                    update={
                        "status": Status.REJECTED,
                        "decided_at": at,
                        "decisions": [*req.decisions, record],
                    }
                )
                entry = self._decision_entry("request.rejected", new, principal, record)
                return Change(new, [entry], [EventType.DECIDED])

            if any(d.by == principal.sub for d in req.approvals):
                return refuse(Conflict("you have already approved this request"))
            final_args, final_digest = req.final_args, req.args_digest
            if modified_args:
                final_args = {**req.final_args, **modified_args}
                final_digest = digest(final_args)
            record = Decision(
                decision=kind,
                by=principal.sub,
                role=principal.role,
                reason=reason,
                modified_args=modified_args or None,
                at=at,
                via=via,
                args_digest=final_digest,
            )
            new = req.model_copy(
                update={
                    "final_args": final_args,
                    "args_digest": final_digest,
                    "decisions": [*req.decisions, record],
                }
            )
            if len({d.by for d in new.approvals}) >= new.policy.quorum:
                new = new.model_copy(update={"status": Status.APPROVED, "decided_at": at})
                entry = self._decision_entry("request.approved", new, principal, record)
            else:
                entry = self._decision_entry("decision.recorded", new, principal, record)
            return Change(new, [entry], [EventType.DECIDED])

        return await self._transition(request_id, apply)

    def _refusal(
        self, req: ApprovalRequest, principal: Principal, kind: DecisionKind, now: datetime
    ) -> SignoffError | None:
        """Why ``principal`` may not decide ``req`` now, or None."""
        if principal.kind != "approver":
            return Forbidden("agents may not decide approval requests")
        if req.status.terminal:
            return Conflict(_no_longer(req))
        if now >= req.expires_at:
            return Conflict(f"the request expired at {req.expires_at.isoformat()}")
        if not self.roles.admits(principal.role, req.policy.min_role):
            return Forbidden(
                f"role {principal.role!r} may not decide this request; it needs "
                f"{req.policy.min_role!r} or higher",
                required_role=req.policy.min_role,
            )
        if principal.sub == req.requested_by and not req.policy.allow_self_approval:
            return Forbidden("you requested this call, so you may not decide it")
        return None

    async def _edit_problem(self, req: ApprovalRequest, modified: JSONObject) -> str | None:
        not_editable = sorted(set(modified) - set(req.policy.editable))
        if not_editable:
            allowed = req.policy.editable or "none"
            return f"not editable: {not_editable}; the policy allows editing {allowed}"
        if req.args_schema is not None:
            errors = await schema_errors(req.args_schema, {**req.final_args, **modified})
            if errors:
                return "the modified arguments do not fit the tool's schema: " + "; ".join(errors)
        return None

    async def decide_many(
        self,
        ids: Sequence[str],
        principal: Principal,
        decision: DecisionKind | str,
        *,
        reason: str | None = None,
        seen_digests: Mapping[str, str] | None = None,
        via: str = "api",
    ) -> list[tuple[str, ApprovalRequest | SignoffError]]:
        """Decide several requests; each one succeeds or fails on its own. ``seen_digests``
        gives, per id, the ``args_digest`` the approver was shown."""
        results: list[tuple[str, ApprovalRequest | SignoffError]] = []
        seen = seen_digests or {}
        for request_id in ids:
            try:
                request = await self.decide(
                    request_id,
                    principal,
                    decision,
                    reason=reason,
                    seen_digest=seen.get(request_id),
                    via=via,
                )
            except SignoffError as exc:
                results.append((request_id, exc))
            else:
                results.append((request_id, request))
        return results

    # -- expiry ---------------------------------------------------------------------------

    async def expire(self, request_id: str) -> ApprovalRequest:
        """Expire the request if it is pending and past ``expires_at``; otherwise no change."""

        def apply(req: ApprovalRequest) -> Change:
            now = self.now()
            if req.status is not Status.PENDING or now < req.expires_at:
                return Change()
            return self._expiry(req, now)

        return await self._transition(request_id, apply)

    async def expire_due(self) -> int:
        count = 0
        for request_id in await self.store.due_for_expiry(self.now()):
            request = await self.expire(request_id)
            count += request.status is Status.EXPIRED
        return count

    async def _sweep_forever(self) -> None:
        while True:
            delay = SWEEP_INTERVAL_S
            try:
                # with replicas sharing a store, one sweeps at a time; the others look again
                # a little later (their own waiters still expire the requests they wait on)
                if await self.store.is_sweep_leader():
                    await self.expire_due()
                    nxt = await self.store.next_expiry()
                    if nxt is not None:
                        delay = min(delay, max(0.0, nxt.timestamp() - self._clock()))
            except Exception:
                log.exception("signoff: the expiry sweep failed; retrying")
            await asyncio.sleep(delay)

    # -- durable runs -------------------------------------------------------------------------

    async def save_run(self, record: RunRecord, principal: Principal) -> RunRecord:
        """Checkpoint a run. Only agents save runs, and only their own: a run id is the
        agent's own, so no agent can claim or overwrite another's run."""
        if principal.kind != "agent":
            raise Forbidden("only agents checkpoint runs")
        record = record.model_copy(
            update={"owner": principal.sub, "agent_id": principal.sub, "updated_at": self.now()}
        )
        await self.store.save_run(record)
        return record

    async def get_run(
        self, run_id: str, principal: Principal, *, owner: str | None = None
    ) -> RunRecord:
        """A run: an agent's own, or (for an approver) the one with that id, of ``owner``
        where several agents used the same id."""
        if principal.kind == "agent":
            owner = principal.sub
        else:
            self._require_known_role(principal)
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

    async def list_runs(
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
            self._require_known_role(principal)
        return await self.store.list_runs(RunQuery(status=status, owner=owner, limit=limit))

    # -- audit ----------------------------------------------------------------------------

    def require_reader(self, principal: Principal) -> None:
        """Raise Forbidden unless ``principal`` may read requests at all (an agent reads its
        own; an approver needs a role the ladder knows)."""
        self._require_known_role(principal)

    def _require_known_role(self, principal: Principal) -> None:
        """An approver reads only with a role the ladder knows: no known role, no access."""
        if principal.kind == "approver" and self.roles.rank(principal.role) < 0:
            raise Forbidden(
                f"your role {principal.role!r} is not one of {list(self.roles.roles)}: "
                "no known role, no access"
            )

    def _require_auditor(self, principal: Principal) -> None:
        if principal.kind != "approver" or principal.role != self.roles.highest:
            raise Forbidden(f"reading the audit log needs the role {self.roles.highest!r}")

    async def audit_events(
        self,
        principal: Principal,
        *,
        request_id: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        self._require_auditor(principal)
        return await self.store.audit_events(
            request_id=request_id, after_seq=after_seq, limit=limit
        )

    async def verify_audit(self, principal: Principal) -> Verification:
        """Check the whole chain: a page at a time, hashed in a worker thread. One check runs
        at a time: callers that ask while one runs share its result."""
        self._require_auditor(principal)
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.ensure_future(self._verify_chain())
        return await asyncio.shield(self._verifying)

    async def _verify_chain(self) -> Verification:
        check = ChainCheck()
        while not check.broken:
            page = await self.store.audit_events(after_seq=check.next_seq - 1, limit=VERIFY_PAGE)
            await asyncio.to_thread(check.feed, page)
            if len(page) < VERIFY_PAGE:
                break
        return check.result()

    # -- helpers --------------------------------------------------------------------------

    async def _transition(self, request_id: str, apply: Any) -> ApprovalRequest:
        result = await self.store.transition(request_id, apply)
        if result.events:
            await self.bus.publish(result.events)
        return result.request

    async def _current(self, request_id: str) -> ApprovalRequest:
        request = await self.store.get(request_id)
        if request is None:
            raise NotFound(f"no approval request {request_id}")
        if request.status is Status.PENDING and self._clock() >= request.expires_at.timestamp():
            request = await self.expire(request_id)
        return request

    async def _check_can_read(self, request: ApprovalRequest, principal: Principal) -> None:
        if principal.kind == "approver":
            if self.roles.rank(principal.role) >= 0:
                return
        elif request.requested_by == principal.sub:
            return
        await self._audit_refusal(request, principal, "read")
        if principal.kind == "approver":
            self._require_known_role(principal)
        raise Forbidden("an agent may only read its own requests")

    async def _check_owner(self, request: ApprovalRequest, principal: Principal, verb: str) -> None:
        if principal.kind == "agent" and request.requested_by == principal.sub:
            return
        await self._audit_refusal(request, principal, verb)
        raise Forbidden(f"only the agent that made this request may {verb} it")

    async def _audit_refusal(self, req: ApprovalRequest, principal: Principal, verb: str) -> None:
        await self.store.append_audit(
            AuditEntry(
                "access.refused",
                req.id,
                principal.audit_actor(),
                self.now(),
                None,
                {"attempted": verb, "error": "forbidden"},
            )
        )

    def _owner_refusal(
        self, req: ApprovalRequest, principal: Principal, verb: str, now: datetime
    ) -> Change | None:
        if principal.kind == "agent" and req.requested_by == principal.sub:
            return None
        error = Forbidden(f"only the agent that made this request may {verb} it")
        return self._refuse(req, principal, now, verb, error)

    def _refuse(
        self,
        req: ApprovalRequest,
        principal: Principal,
        now: datetime,
        verb: str,
        error: SignoffError,
        *,
        via: str | None = None,
    ) -> Change:
        entry = AuditEntry(
            "decision.refused" if verb in ("approve", "reject") else "action.refused",
            req.id,
            principal.audit_actor(),
            now,
            via,
            {
                "attempted": verb,
                "error": error.code,
                "message": error.message,
                "status": req.status.value,
            },
        )
        return Change(audit=[entry], error=error)

    def _expiry(self, req: ApprovalRequest, now: datetime) -> Change:
        new = req.model_copy(update={"status": Status.EXPIRED, "decided_at": now})
        entry = AuditEntry(
            "request.expired",
            req.id,
            SYSTEM.audit_actor(),
            now,
            "system",
            {"expires_at": req.expires_at.isoformat()},
        )
        return Change(new, [entry], [EventType.EXPIRED])

    def _expired_change(
        self,
        req: ApprovalRequest,
        now: datetime,
        principal: Principal,
        verb: str,
        *,
        via: str | None = None,
    ) -> Change | None:
        """A pending request past its time: expire it and refuse the late action with 409."""
        if req.status is not Status.PENDING or now < req.expires_at:
            return None
        expiry = self._expiry(req, now)
        error = Conflict(f"the request expired at {req.expires_at.isoformat()}")
        refused = self._refuse(expiry.request or req, principal, now, verb, error, via=via)
        return Change(expiry.request, [*expiry.audit, *refused.audit], expiry.events, error)

    @staticmethod
    def _decision_entry(
        type_: str, req: ApprovalRequest, principal: Principal, record: Decision
    ) -> AuditEntry:
        return AuditEntry(
            type_,
            req.id,
            principal.audit_actor(),
            record.at,
            record.via,
            {
                "decision": record.decision.value,
                "reason": record.reason,
                "modified_args": record.modified_args,
                "args_digest": record.args_digest,
                "status": req.status.value,
                "approvals": len({d.by for d in req.approvals}),
                "quorum": req.policy.quorum,
            },
        )


def _changed(req: ApprovalRequest) -> Conflict:
    """The arguments are no longer those the approver was shown: look again."""
    return Conflict(
        "the arguments changed since you looked (another approver edited them): review the "
        "request again",
        args_digest=req.args_digest,
        final_args=req.final_args,
    )


def _no_longer(req: ApprovalRequest) -> str:
    return f"the request is no longer pending: it is {req.status.value}"


def _bounded(detail: Any) -> Any:
    text = json.dumps(detail, ensure_ascii=False)
    if len(text) <= MAX_DETAIL_CHARS:
        return detail
    return {"truncated": True, "preview": text[:MAX_DETAIL_CHARS]}
