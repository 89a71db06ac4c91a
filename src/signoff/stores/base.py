"""The Store: where requests, their audit chain and their live events are kept.

Every write goes through two methods. :meth:`Store.create` inserts a request idempotently;
:meth:`Store.transition` reads one request under the store's write lock, hands it to a pure
function that computes the change, and writes the new state, its audit events and its live
events in the same transaction. Because the function runs under the lock and the state is
re-read there, every decision is a compare-and-set: whatever races for a request, exactly one
terminal transition happens to it. The decision logic itself lives in the service, once, and
stores stay small.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from signoff.audit import AuditEntry, AuditEvent
from signoff.errors import InvalidArguments, SignoffError, StoreError
from signoff.events import Event
from signoff.models import ApprovalRequest, Page, RunRecord


@dataclass(slots=True)
class Change:
    """What a transition writes, all in one transaction."""

    #: the request's new state, or None to leave it as it is
    request: ApprovalRequest | None = None
    audit: list[AuditEntry] = field(default_factory=list)
    #: live event types to emit, each carrying the request as it is after the change
    events: list[str] = field(default_factory=list)
    #: raised after the commit: a refused attempt is audited, then reported to the caller
    error: SignoffError | None = None


#: computes a :class:`Change` from the request as stored; runs under the write lock and
#: must not await or touch the store
TransitionFn = Callable[[ApprovalRequest], Change]


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
    events: Sequence[Event] = ()


@dataclass(frozen=True, slots=True)
class Transitioned:
    request: ApprovalRequest
    events: Sequence[Event] = ()


def check_audited(change: Change) -> None:
    """Every state change is audited (ARCHITECTURE.md invariant 7): refuse one that is not."""
    if change.request is not None and not change.audit:
        raise StoreError("refusing to write a state change that has no audit event")


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


class Store(ABC):
    """Requests, their audit chain and their live events. See the module docstring."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and migrate. Called once before use."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call twice."""

    async def is_sweep_leader(self) -> bool:
        """Whether this process should run the expiry sweep now. Every process may (expiry
        is a compare-and-set); a store that many replicas share elects one at a time."""
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

    @abstractmethod
    async def create(
        self, request: ApprovalRequest, audit: AuditEntry, events: Sequence[str]
    ) -> Created:
        """Insert ``request`` unless one with its ``idempotency_key`` exists (then return that
        one, with ``created=False``, writing nothing)."""

    @abstractmethod
    async def get(self, request_id: str) -> ApprovalRequest | None: ...

    @abstractmethod
    async def list_requests(self, query: ListQuery) -> Page:
        """Requests newest first, filtered; ``next_cursor`` continues the listing."""

    @abstractmethod
    async def transition(self, request_id: str, fn: TransitionFn) -> Transitioned:
        """Apply ``fn`` to the stored request atomically (see the module docstring).

        Raises :class:`NotFound` for an unknown id and ``change.error`` after committing.
        """

    @abstractmethod
    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        """Ids of pending requests whose ``expires_at`` is at or before ``now``."""

    @abstractmethod
    async def next_expiry(self) -> datetime | None:
        """The earliest ``expires_at`` among pending requests."""

    @abstractmethod
    async def append_audit(self, entry: AuditEntry) -> None:
        """Append an audit event that changes no request (a refused attempt on nothing)."""

    @abstractmethod
    async def audit_events(
        self, *, request_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        """Audit events in chain order."""

    @abstractmethod
    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        """Live events with an id greater than ``after_id``, oldest first."""

    @abstractmethod
    async def last_event_id(self) -> int: ...

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """How many requests there are in each status."""

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
