"""The ApprovalService: the one place where requests change state.

It authorizes reads, checks what needs a worker thread (schemas an agent sent), applies the
pure transitions of :mod:`signoff.lifecycle` through :meth:`Store.transition` (each one a
compare-and-set, with its audit and live events in the same transaction), publishes them on
the bus, waits and sweeps. Whoever acts is a :class:`Principal` the caller authenticated;
nothing here trusts identity from a payload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from signoff import access, decisions, intake, lifecycle
from signoff._util import jsonable, stop_task, to_datetime
from signoff.audit import AuditEntry, AuditEvent, Checkpoint
from signoff.audit_check import Verification
from signoff.audit_log import AuditLog
from signoff.bus.base import Bus
from signoff.bus.memory import MemoryBus
from signoff.bus.replay import RequestEvents, StoreEvents
from signoff.canonical import digest, json_problem, storable
from signoff.config import Config
from signoff.errors import (
    Conflict,
    Forbidden,
    InvalidArguments,
    NotFound,
    SignoffError,
    StateMismatch,
)
from signoff.events import Event
from signoff.follow import Feed, OnOpen, follow
from signoff.grant_book import GrantBook
from signoff.grants import GrantAsk
from signoff.history_book import HistoryBook
from signoff.jsonlog import about
from signoff.keys import Keyring
from signoff.models import (
    SYSTEM,
    ApprovalRequest,
    DecisionKind,
    Page,
    Principal,
    RequestSpec,
    Status,
)
from signoff.receipted import receipted
from signoff.run_book import RunBook
from signoff.stores.base import Created, ListQuery, Store, TransitionFn
from signoff.types import Clock, JSONObject

log = logging.getLogger(__name__)
#: which live events a feed wants (None: all)
Accept = Callable[[Event], bool] | None

#: how long the sweeper sleeps at most between looks for expired requests
SWEEP_INTERVAL_S = 1.0
#: how long a waiting call trusts the bus at most before reading its request again: a lost
#: wake-up (a writer died before notifying) delays it by this much, not until it expires
RECHECK_S = 30.0


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
        keys: Keyring | Callable[[], Keyring] | None = None,
    ) -> None:
        self.store = store
        # without a bus of its own the service hears only this process: signoff.connect(url)
        # gives the one that also hears the other processes sharing the store
        self.bus = bus if bus is not None else MemoryBus()
        self.config = config if config is not None else Config()
        self.roles = self.config.roles
        #: which channels hear of each change (deliveries written with it: the outbox)
        self.routing = self.config.routing
        self._clock = clock
        self._sweep = sweep
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False
        # the key that signs the log's checkpoints: the store's folder's, else one for now
        if keys is None:
            keys = self._default_keys
        self.runs = RunBook(store, self.roles, self.now)  #: durable agent runs' checkpoints
        self.histories = HistoryBook(store, self.now)  #: agents' own calls (remote limits)
        self.grants = GrantBook(store, self.roles, self.now)  #: standing grants
        #: the audit log: sealed while the service runs (``sweep``), read and verified
        self.audit_log = AuditLog(
            store, keys, self.now, seal_interval=self.config.audit.seal_interval_s
        )

    # -- lifecycle ------------------------------------------------------------------------

    def _default_keys(self) -> Keyring:
        """The store's folder's keyring (created once), or a key for this process alone."""
        folder, trusted = self.store.data_dir, self.config.audit.trusted_keys
        return Keyring.ephemeral() if folder is None else Keyring.load(folder, trusted=trusted)

    async def start(self) -> None:
        if self._started:
            return
        await self.store.start()
        self.audit_log.keys  # noqa: B018 - a keyring that cannot load fails the start
        await self.bus.start(self.store)
        if self._sweep:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="signoff-sweeper")
            self.audit_log.start()
        self._started = True

    async def aclose(self) -> None:
        await stop_task(self._sweeper)
        self._sweeper = None
        if self._started and self._sweep:
            await self.audit_log.aclose()
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

        The operator's policy for the tool is a floor on every submission
        (:mod:`signoff.intake`, docs/configuration.md): its ``deny`` refuses the call
        (:class:`PolicyDenied`), its reason template replaces the agent's text, and its
        terms are the floor under the proposed ones. ``from_operator`` marks a proposal
        from the operator's own code (an embedded gate)."""
        if principal.kind != "agent":
            raise Forbidden("only agents create approval requests")
        proposal = await intake.proposal(spec, principal, self.config, from_operator=from_operator)
        request, audit = lifecycle.create(proposal, principal, self.now())
        # a call a live grant covers is approved at once (no channel is told: nobody acts)
        created = await self.grants.create(request, audit, self.routing.deliveries)
        if not created.created:
            existing = created.request
            if existing.tool != spec.tool or digest(existing.args) != digest(spec.args):
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
        end a wait."""
        async with follow(RequestEvents(self.bus, request_id)) as changes:
            # subscribed: the newest state this process heard of is as good as a read
            seen = self.bus.latest(request_id)
            request = seen.snapshot if seen is not None else await self._current(request_id)
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
                event = await changes.next(min(until - now, RECHECK_S))
                if event is not None and event.snapshot.status is not Status.PENDING:
                    # a request never returns to pending: the state this committed change
                    # left is a true answer without reading it back (a later change, such
                    # as another consumer's claim, is found by the caller's own transition)
                    return event.snapshot
                request = await self._current(request_id)
        return request

    def follow(
        self, *, after: int | None = None, on_open: OnOpen | None = None, accept: Accept = None
    ) -> Feed[Event]:
        """Every live event after ``after`` (None: from when the feed opens), or those
        ``accept`` takes, resumed across drops; ``on_open`` runs at every opening (see
        :mod:`signoff.follow`)."""
        source = StoreEvents(self.store, self.bus, accept=accept)
        return follow(source, after=after, on_open=on_open)

    async def cancel(
        self, request_id: str, principal: Principal, reason: str | None = None
    ) -> ApprovalRequest:
        if (problem := json_problem(reason)) is not None:
            raise InvalidArguments(f"reason: {problem}")
        return await self._transition(
            request_id, lambda req: lifecycle.cancel(req, principal, reason, self.now())
        )

    async def consume(self, request_id: str, principal: Principal) -> ApprovalRequest:
        """Claim an approved request for execution. Succeeds once; every later call is a
        Conflict, so the tool runs at most once per approval, whatever retries."""
        return await self._transition(
            request_id, lambda req: lifecycle.consume(req, principal, self.now())
        )

    async def record_outcome(
        self,
        request_id: str,
        principal: Principal,
        status: Literal["succeeded", "failed"],
        detail: Any = None,
    ) -> ApprovalRequest:
        if status not in ("succeeded", "failed"):
            raise InvalidArguments("outcome status must be 'succeeded' or 'failed'")
        detail = lifecycle.bounded(storable(jsonable(detail)))
        return await self._transition(
            request_id,
            lambda req: lifecycle.record_outcome(req, principal, status, detail, self.now()),
        )

    # -- the approver's side --------------------------------------------------------------

    async def list_requests(self, query: ListQuery, principal: Principal) -> Page:
        access.require_reader(principal, self.roles)
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
        grant: GrantAsk | JSONObject | None = None,
        response: Any = None,
    ) -> ApprovalRequest:
        """Approve, reject, or respond (``response``: the model's answer in the tool's
        place); an approval may ``grant`` (:mod:`signoff.grants`). Raises Forbidden (agent,
        role too low, own request), Conflict (no longer pending, already approved by this
        approver, or ``seen_digest`` — the ``args_digest`` shown — no longer what would
        run), InvalidEdit; each refusal is audited and leaves the request as it was. Edits
        are checked against the tool's schema before the write, off the loop (the schema may
        be an agent's); the write runs only if those arguments are still the request's."""
        asked = decisions.asked(
            principal,
            decision,
            reason=reason,
            modified_args=modified_args,
            seen_digest=seen_digest,
            response=response,
            via=via,
            grant=grant,
        )
        if modified_args:
            # checked before the write and off the event loop: the schema may be an agent's
            current = await self._current(request_id)
            problem = None
            if lifecycle.refusal(current, principal, self.roles, self.now()) is None:
                problem = await intake.edit_problem(current, modified_args)
            asked = replace(asked, checked_digest=current.args_digest, edit_problem=problem)
        return await self._transition(
            request_id, lambda req: lifecycle.decide(req, asked, self.roles, self.now())
        )

    async def decide_many(
        self,
        ids: Sequence[str],
        principal: Principal,
        decision: DecisionKind | str,
        *,
        seen_digests: Mapping[str, str] | None = None,
        **same: Any,
    ) -> list[tuple[str, ApprovalRequest | SignoffError]]:
        """Decide several requests the same way (``same``: :meth:`decide`'s reason, via,
        grant, response), each on its own; ``seen_digests``: per id, the ``args_digest``
        shown. A decision no request could take as asked raises, deciding none."""
        shape = {"reason": None, "response": None, "via": "api", **same}
        decisions.asked(principal, decision, modified_args=None, seen_digest=None, **shape)
        results: list[tuple[str, ApprovalRequest | SignoffError]] = []
        seen = seen_digests or {}
        for request_id in ids:
            try:
                request = await self.decide(
                    request_id, principal, decision, seen_digest=seen.get(request_id), **same
                )
            except SignoffError as exc:
                results.append((request_id, exc))
            else:
                results.append((request_id, request))
        return results

    # -- expiry ---------------------------------------------------------------------------

    async def expire(self, request_id: str) -> ApprovalRequest:
        """Expire the request if it is pending and past ``expires_at``; otherwise no change."""
        return await self._transition(request_id, lambda req: lifecycle.expire(req, self.now()))

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
                if await self.store.is_leader():
                    await self.expire_due()
                    nxt = await self.store.next_expiry()
                    if nxt is not None:
                        delay = min(delay, max(0.0, nxt.timestamp() - self._clock()))
            except Exception:
                log.exception("signoff: the expiry sweep failed; retrying")
            await asyncio.sleep(delay)

    # -- audit ----------------------------------------------------------------------------

    def require_reader(self, principal: Principal) -> None:
        """Raise Forbidden unless ``principal`` may read requests at all."""
        access.require_reader(principal, self.roles)

    async def audit_events(
        self,
        principal: Principal,
        *,
        request_id: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        access.require_auditor(principal, self.roles)
        return await self.audit_log.events(request_id=request_id, after=after, limit=limit)

    async def verify_audit(
        self, principal: Principal, *, against: Checkpoint | None = None
    ) -> Verification:
        """Check the whole log, its signed checkpoints (and ``against``, one exported
        elsewhere) and every request's row against its events."""
        access.require_auditor(principal, self.roles)
        return await self.audit_log.verify(against)

    async def checkpoints(
        self, principal: Principal, *, after: int = 0, limit: int = 1000
    ) -> list[Checkpoint]:
        access.require_auditor(principal, self.roles)
        return await self.audit_log.checkpoints(after=after, limit=limit)

    async def escalate(self, request_id: str, step: int, notify: Sequence[str]) -> ApprovalRequest:
        """Fire escalation ``step`` of a request still pending (once: lifecycle.escalate)."""
        return await self._transition(
            request_id, lambda req: lifecycle.escalate(req, step, list(notify), self.now())
        )

    async def _transition(self, request_id: str, apply: TransitionFn) -> ApprovalRequest:
        with about(request_id):  # what is logged below names the request
            return await self._transition_logged(request_id, apply)

    async def _transition_logged(self, request_id: str, apply: TransitionFn) -> ApprovalRequest:
        try:
            result = await self.store.transition(
                request_id,
                self.routing.announced(
                    receipted(apply, lambda: self.audit_log.keys, self.config.audit.receipt_ttl_s)
                ),
            )
        except StateMismatch as exc:
            # fail closed, and leave a trace: the row was changed outside signoff
            log.error("signoff: %s", exc.message)
            entry = AuditEntry(
                "integrity.mismatch",
                request_id,
                SYSTEM.audit_actor(),
                self.now(),
                "system",
                {"row": exc.detail.get("row"), "events": exc.detail.get("events")},
            )
            await self.store.append_audit(entry)
            raise
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
            access.require_reader(principal, self.roles)
        raise Forbidden("an agent may only read its own requests")

    async def _check_owner(self, request: ApprovalRequest, principal: Principal, verb: str) -> None:
        if principal.kind == "agent" and request.requested_by == principal.sub:
            return
        await self._audit_refusal(request, principal, verb)
        raise Forbidden(f"only the agent that made this request may {verb} it")

    async def _audit_refusal(self, req: ApprovalRequest, principal: Principal, verb: str) -> None:
        await self.store.append_audit(lifecycle.access_refused(req, principal, verb, self.now()))
