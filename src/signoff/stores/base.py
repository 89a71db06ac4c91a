"""The Store: where requests, their audit log and its seals are kept.

**Writes.** :meth:`Store.create` inserts a request idempotently. :meth:`Store.transition`
hands the request to a pure function that computes the :class:`Change`, then writes it with
a compare-and-set on the row's ``version``: only if nobody changed the request since the
version the function saw. On a conflict the function runs again on the request as it now
is, so whatever races for a request, exactly one terminal transition happens to it, and
writes to different requests never wait for each other. A store may start from the version
it last wrote itself (its cache) and so skip reading the row before writing it.

**State bound to the log.** The same write checks that the newest state in the request's
audit events is the state the function started from (:mod:`signoff.evidence`); when it is
not, the row was changed outside signoff and the write fails closed with
:class:`StateMismatch`.

**Events.** Every change appends its audit events in the same transaction. An audit event
that changes a request is also its live event (the id of a live event is its audit
position): one log, read by the live streams, the sealer and ``audit verify``. Positions only
increase, may skip numbers, and :meth:`Store.events_after` never returns one while a smaller
one could still commit, so a reader that has seen position *n* never misses an event below
it.

**Seals.** The sealer (:mod:`signoff.sealer`) reads the unsealed events in position order
and appends their chain links and a signed checkpoint, compare-and-set on the chain's head.
"""

from __future__ import annotations

import base64
import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from signoff.audit import GENESIS, AuditEntry, AuditEvent, Checkpoint, Link
from signoff.errors import InvalidArguments, SignoffError, StateMismatch, StoreError
from signoff.events import Event
from signoff.evidence import request_state
from signoff.grants import Grant
from signoff.models import ApprovalRequest, Page, RunRecord
from signoff.stores.device_base import DeviceStore
from signoff.stores.grant_store import GrantQuery, GrantStore
from signoff.stores.history_store import HistoryStore
from signoff.stores.outbox import NewDelivery, Outbox

#: how many times a transition is recomputed on a request that others keep changing
MAX_ATTEMPTS = 64


@dataclass(slots=True)
class Change:
    """What a transition writes, all in one transaction."""

    #: the request's new state, or None to leave it as it is
    request: ApprovalRequest | None = None
    audit: list[AuditEntry] = field(default_factory=list)
    #: raised after the commit: a refused attempt is audited, then reported to the caller
    error: SignoffError | None = None
    #: the outbox rows announcing this change (written only with a new state)
    deliveries: list[NewDelivery] = field(default_factory=list)
    #: a standing grant the change makes (an approval that grants): written with it or not
    #: at all (written only with a new state)
    grant: Grant | None = None


#: computes a :class:`Change` from the request as stored; must not await or touch the
#: store, and may run more than once (on a request another writer just changed)
TransitionFn = Callable[[ApprovalRequest], Change]


@dataclass(frozen=True, slots=True)
class Versioned:
    """A request and the version of its row."""

    request: ApprovalRequest
    version: int


@dataclass(frozen=True, slots=True)
class Stale:
    """The row changed since the version the change was computed from: here it is now."""

    current: Versioned


@dataclass(frozen=True, slots=True)
class Applied:
    """The change is committed."""

    current: Versioned
    events: list[Event]


@dataclass(frozen=True, slots=True)
class ListQuery:
    status: str | None = None
    tool: str | None = None
    agent_id: str | None = None
    risk: str | None = None
    requested_by: str | None = None
    limit: int = 50
    cursor: str | None = None

    def filters(self) -> list[tuple[str, str]]:
        """The ``(column, value)`` pairs to match. The column names are fixed strings, never
        caller input, so SQL stores may put them in a statement."""
        pairs = (
            ("status", self.status),
            ("tool", self.tool),
            ("agent_id", self.agent_id),
            ("risk", self.risk),
            ("requested_by", self.requested_by),
        )
        return [(column, value) for column, value in pairs if value is not None]


@dataclass(frozen=True, slots=True)
class RunQuery:
    status: str | None = None
    owner: str | None = None
    run_id: str | None = None
    limit: int = 100

    def params(self) -> dict[str, str | int | None]:
        return {
            "status": self.status,
            "owner": self.owner,
            "run_id": self.run_id,
            "limit": self.limit,
        }


@dataclass(frozen=True, slots=True)
class Created:
    request: ApprovalRequest
    created: bool
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Transitioned:
    request: ApprovalRequest
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SealedRow:
    """A chain link with the event it seals, as ``audit verify`` reads them. ``record`` is
    None when the event is gone; ``state`` is the state column stored beside the record."""

    seq: int
    position: int
    hash: str
    record: str | None
    state: str | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An audit event as ``audit verify`` reads the ones not yet sealed."""

    position: int
    record: str
    state: str | None


def check_audited(change: Change) -> None:
    """Every state change is audited (ARCHITECTURE.md invariant 7): refuse one that is not."""
    if change.request is not None and not change.audit:
        raise StoreError("refusing to write a state change that has no audit event")
    if change.request is None and (change.deliveries or change.grant is not None):
        raise StoreError("refusing to write deliveries or a grant that go with no change")


def live_events(
    audit: list[AuditEntry],
    positions: list[int],
    request: ApprovalRequest,
    prev: int | None,
    body: str | None = None,
) -> list[Event]:
    """The live events among ``audit`` entries written at ``positions``. ``prev``: a position
    before the first one with no live event between, when the store knows one (None: it
    does not, see :attr:`Event.prev`); each later one follows the live one before it (what
    lies between is this write's own, not live). ``body``: the request's JSON as written."""
    out = []
    for entry, position in zip(audit, positions, strict=True):
        live = entry.live
        if live is not None:
            out.append(Event(position, live, request.id, entry.at_text, request, prev, body))
            if prev is not None:
                prev = position
    return out


def audit_event(row: tuple[int, str, int | None, str | None, str | None]) -> AuditEvent:
    """An event from a ``(position, record, seq, hash, previous link's hash)`` row."""
    position, record, seq, hash_, prev = row
    if seq == 1:
        prev = GENESIS
    return AuditEvent(position, record, seq, hash_, prev if seq is not None else None)


def parse_or_none(body: str) -> ApprovalRequest | None:
    """The request in ``body``, or None when it does not parse (altered outside signoff)."""
    try:
        return ApprovalRequest.model_validate_json(body)
    except ValueError:
        return None


def audit_json(entries: list[AuditEntry]) -> str:
    """Audit entries as the one JSON text the PostgreSQL functions take: a [type, state,
    live, at, record] array each, the record a string so that its text is kept exactly."""
    return json.dumps(
        [[e.type, e.state, e.live, e.at_text, e.record()] for e in entries],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor names. Anything but a cursor this store made (a huge number, a
    negative one, text) is :class:`InvalidArguments`, never a database error."""
    try:
        if len(cursor) > 40:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s") or not raw[1:].isdigit():
            raise ValueError(raw)
        seq = int(raw[1:])
        if not 0 < seq < 2**63:
            raise ValueError(raw)
        return seq
    except ValueError as exc:
        raise InvalidArguments(f"invalid cursor {cursor!r}") from exc


class Store(Outbox, DeviceStore, GrantStore, HistoryStore):
    """Requests, their audit log and its seals, the outbox (:mod:`signoff.stores.outbox`),
    signed-in devices and standing grants. See the module docstring."""

    #: the folder that holds the store's files (and so the server's keys), if it has one
    data_dir: Path | None = None

    async def start(self) -> None:
        """Connect and migrate. Called once before use."""

    async def aclose(self) -> None:
        """Release connections. Safe to call twice."""

    async def settle(self) -> None:
        """Wait (briefly) until this process's own writes are final in the log: readable in
        order and sealable. Immediate where commit order is position order (SQLite)."""

    async def is_leader(self) -> bool:
        """Whether this process should sweep expired requests and seal the audit log now.
        Every process may (both are compare-and-sets); a store that many replicas share
        elects one at a time."""
        return True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- writes ---------------------------------------------------------------------------

    @abstractmethod
    async def create(
        self,
        request: ApprovalRequest,
        audit: AuditEntry,
        deliveries: Sequence[NewDelivery] = (),
    ) -> Created:
        """Insert ``request`` (with its audit event and its ``deliveries``, in one
        transaction) unless one with its ``idempotency_key`` exists (then return that one,
        with ``created=False``, writing nothing)."""

    @abstractmethod
    async def create_granted(
        self, request: ApprovalRequest, audit: list[AuditEntry], grant_id: str, now: datetime
    ) -> Created | None:
        """:meth:`create` for a request approved by grant ``grant_id`` (``audit``: its
        events), only if the grant is live at ``now`` in the same transaction; None, with
        nothing written, when it is not (:mod:`signoff.stores.grant_store`)."""

    async def create_ungranted(
        self, request: ApprovalRequest, audit: AuditEntry, deliveries: Sequence[NewDelivery] = ()
    ) -> Created | None:
        """:meth:`create`, unless a live grant names the request's agent and tool (None,
        nothing written: see whether it covers, :meth:`create_granted`). A store that can
        checks this in the create's own transaction rather than with a read before it."""
        agent, tool, at = request.requested_by, request.tool, request.created_at
        if await self.list_grants(GrantQuery(agent, tool, active=True, now=at, limit=1)):
            return None
        return await self.create(request, audit, deliveries)

    async def transition(self, request_id: str, fn: TransitionFn) -> Transitioned:
        """Apply ``fn`` to the stored request atomically (see the module docstring).

        Raises :class:`NotFound` for an unknown id, :class:`StateMismatch` when the row
        disagrees with its events, and ``change.error`` after committing.
        """
        current = await self._for_write(request_id)
        for _ in range(MAX_ATTEMPTS):
            change = fn(current.request)
            check_audited(change)
            outcome = await self._apply(current, change, request_state(current.request))
            if isinstance(outcome, Stale):
                current = outcome.current
                continue
            if change.error is not None:
                raise change.error
            return Transitioned(outcome.current.request, outcome.events)
        raise StoreError(f"request {request_id} kept changing: gave up after {MAX_ATTEMPTS} tries")

    @abstractmethod
    async def _for_write(self, request_id: str) -> Versioned:
        """The request to compute a change from: the version this store last wrote or read,
        or the row. Raises :class:`NotFound`."""

    @abstractmethod
    async def _apply(self, base: Versioned, change: Change, expects: str) -> Applied | Stale:
        """Write ``change`` if the row is still at ``base.version`` (else :class:`Stale`
        with the row as it is). A change to the request also needs the newest state in its
        audit events to be ``expects``: else raise :class:`StateMismatch`. Refusals (no new
        request) only append their audit events, at the same version."""

    @abstractmethod
    async def append_audit(self, entry: AuditEntry) -> None:
        """Append an audit event that changes no request (a refused attempt on nothing)."""

    # -- reads ----------------------------------------------------------------------------

    @abstractmethod
    async def get(self, request_id: str) -> ApprovalRequest | None: ...

    def request_json(self, request: ApprovalRequest) -> str:
        """``request.model_dump_json()``; a store that keeps the text it wrote for this very
        object returns that instead of serializing it again."""
        return request.model_dump_json()

    @abstractmethod
    async def list_requests(self, query: ListQuery) -> Page:
        """Requests newest first, filtered; ``next_cursor`` continues the listing."""

    @abstractmethod
    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        """Ids of pending requests whose ``expires_at`` is at or before ``now``."""

    @abstractmethod
    async def next_expiry(self) -> datetime | None:
        """The earliest ``expires_at`` among pending requests."""

    @abstractmethod
    async def audit_events(
        self, *, request_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        """Audit events after position ``after``, in position order, with their seals."""

    @abstractmethod
    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        """Live events with an id greater than ``after_id``, oldest first, each carrying the
        request as it is now; none while an event with a smaller id could still commit."""

    @abstractmethod
    async def last_event_id(self) -> int:
        """An id such that every live event at or below it has committed: where a stream
        that starts now begins."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """How many requests there are in each status."""

    @abstractmethod
    async def requests_page(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, ApprovalRequest | None, str]]:
        """Every request in storage order after ``after_seq``: ``(seq, request, body)``, the
        request None when its body does not parse (``audit verify`` reads them all)."""

    # -- sealing --------------------------------------------------------------------------

    @abstractmethod
    async def chain_head(self) -> Link | None:
        """The newest link of the chain (None before the first seal)."""

    @abstractmethod
    async def unsealed(self, after_position: int, limit: int) -> list[StoredEvent]:
        """Events after ``after_position`` in position order, only those below which no
        event can still commit (the sealer must never seal past a late one)."""

    @abstractmethod
    async def seal(self, head: Link | None, links: list[Link], checkpoint: Checkpoint) -> bool:
        """Append ``links`` and ``checkpoint`` if the chain's head is still ``head``; False
        when another sealer got there first (nothing written)."""

    @abstractmethod
    async def sealed(self, after_seq: int, limit: int) -> list[SealedRow]:
        """Chain links after ``after_seq`` with the events they seal, in chain order."""

    @abstractmethod
    async def checkpoints(self, after_size: int = 0, limit: int = 1000) -> list[Checkpoint]:
        """Signed checkpoints, oldest first."""

    @abstractmethod
    async def unsealed_below(self, position: int, limit: int = 10) -> list[int]:
        """Positions at or below ``position`` (the sealed frontier) of events that are not
        in the chain: inserted after the fact."""

    # -- durable runs ---------------------------------------------------------------------

    @abstractmethod
    async def save_run(self, record: RunRecord) -> None:
        """Insert or update a run's checkpoint, keyed by its owner and run id: a run id
        belongs to the agent that runs it, so no agent can touch another's run."""

    @abstractmethod
    async def get_run(self, owner: str, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        """Runs, most recently updated first."""

    # -- single-use tokens ----------------------------------------------------------------

    @abstractmethod
    async def spend(self, key: str, until: datetime) -> bool:
        """Record ``key`` (a single-use token's id) as used until ``until``; False when it
        already was. Kept in the database, not the process, so that a sign-in link or a
        stream ticket works once across every replica that shares it."""

    @abstractmethod
    async def is_spent(self, key: str) -> bool:
        """Whether ``key`` was spent and its ``until`` has not passed."""

    async def ping(self) -> None:
        """Raise :class:`StoreError` if the store cannot serve requests."""
        try:
            await self.last_event_id()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"the store is not reachable: {exc}") from exc


def mismatch(request_id: str, expects: str, logged: str | None) -> StateMismatch:
    return StateMismatch(
        f"request {request_id} is stored as {expects!r} but its audit log says "
        f"{logged!r}: it was changed outside signoff, so nothing more is done with it",
        request_id=request_id,
        row=expects,
        events=logged,
    )
