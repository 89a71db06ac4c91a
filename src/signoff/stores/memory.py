"""An in-process store: for tests, benchmarks and throwaway runs. Nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from signoff.audit import GENESIS, AuditEntry, AuditEvent, Checkpoint, Link
from signoff.errors import NotFound
from signoff.events import Event
from signoff.grants import Grant
from signoff.models import ApprovalRequest, Page, RunRecord, Status
from signoff.stores.base import (
    Applied,
    Change,
    Created,
    ListQuery,
    RunQuery,
    SealedRow,
    Stale,
    Store,
    StoredEvent,
    Versioned,
    decode_cursor,
    encode_cursor,
    live_events,
    mismatch,
)
from signoff.stores.history_store import Execution
from signoff.stores.memory_devices import DeviceRow, MemoryDevices
from signoff.stores.memory_grants import MemoryGrants
from signoff.stores.memory_history import MemoryHistory
from signoff.stores.memory_outbox import MemoryOutbox
from signoff.stores.outbox import NewDelivery


@dataclass(slots=True)
class MemoryEvent:
    """An audit event as the memory store keeps it (tests alter these to tamper)."""

    position: int
    request_id: str | None
    type: str
    state: str | None
    live: str | None
    at: str
    record: str


class MemoryStore(MemoryOutbox, MemoryDevices, MemoryGrants, MemoryHistory, Store):
    """Keeps everything in dicts. Writes are atomic because they never await, and a lock
    keeps them atomic if threads share the store too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, datetime] = {}
        self._devices: dict[str, DeviceRow] = {}
        self._requests: dict[str, Versioned] = {}
        self._seq: dict[str, int] = {}
        self._by_key: dict[str, str] = {}
        self._runs: dict[tuple[str, str], RunRecord] = {}
        self._next_seq = 1
        #: the log, the chain and the checkpoints, open to tamper tests
        self.raw_events: list[MemoryEvent] = []
        self.raw_chain: list[Link] = []
        self.raw_checkpoints: list[Checkpoint] = []
        self._outbox_init()
        self._grants: dict[str, Grant] = {}
        self._executions: list[Execution] = []

    # -- helpers (call with the lock held) -------------------------------------------------

    def _append(self, entries: list[AuditEntry]) -> list[int]:
        positions = []
        for entry in entries:
            position = (self.raw_events[-1].position if self.raw_events else 0) + 1
            self.raw_events.append(
                MemoryEvent(
                    position,
                    entry.request_id,
                    entry.type,
                    entry.state,
                    entry.live,
                    entry.at_text,
                    entry.record(),
                )
            )
            positions.append(position)
        return positions

    def _top(self) -> int:
        return self.raw_events[-1].position if self.raw_events else 0

    def _logged_state(self, request_id: str) -> str | None:
        for event in reversed(self.raw_events):
            if event.request_id == request_id and event.state is not None:
                return event.state
        return None

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self,
        request: ApprovalRequest,
        audit: AuditEntry,
        deliveries: Sequence[NewDelivery] = (),
    ) -> Created:
        with self._lock:
            return self._insert(request, [audit], deliveries)

    def _insert(
        self, request: ApprovalRequest, audit: list[AuditEntry], deliveries: Sequence[NewDelivery]
    ) -> Created:
        """Insert (with the lock held) unless the idempotency key was used before."""
        key = request.idempotency_key
        if key is not None and key in self._by_key:
            return Created(self._requests[self._by_key[key]].request, created=False)
        self._insert_deliveries(deliveries)
        self._requests[request.id] = Versioned(request, 1)
        self._seq[request.id] = self._next_seq
        self._next_seq += 1
        if key is not None:
            self._by_key[key] = request.id
        prev = self._top()
        positions = self._append(audit)
        return Created(request, True, live_events(audit, positions, request, prev))

    async def _for_write(self, request_id: str) -> Versioned:
        current = self._requests.get(request_id)
        if current is None:
            raise NotFound(f"no approval request {request_id}")
        return current

    async def _apply(self, base: Versioned, change: Change, expects: str) -> Applied | Stale:
        request_id = base.request.id
        with self._lock:
            current = self._requests[request_id]
            if current.version != base.version:
                return Stale(current)
            new = change.request
            if new is not None:
                logged = self._logged_state(request_id)
                if logged != expects:
                    raise mismatch(request_id, expects, logged)
                self._insert_deliveries(change.deliveries)
                self._insert_grant(change.grant)
                current = self._requests[request_id] = Versioned(new, base.version + 1)
            prev = self._top()
            positions = self._append(change.audit)
        if new is None:
            return Applied(current, [])
        return Applied(current, live_events(change.audit, positions, new, prev))

    async def append_audit(self, entry: AuditEntry) -> None:
        with self._lock:
            self._append([entry])

    # -- reads ----------------------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRequest | None:
        current = self._requests.get(request_id)
        return None if current is None else current.request

    async def list_requests(self, query: ListQuery) -> Page:
        before = decode_cursor(query.cursor) if query.cursor else None
        with self._lock:
            ordered = sorted(
                (v.request for v in self._requests.values()),
                key=lambda r: self._seq[r.id],
                reverse=True,
            )
        items: list[ApprovalRequest] = []
        for req in ordered:
            seq = self._seq[req.id]
            if before is not None and seq >= before:
                continue
            if any(
                wanted is not None and have != wanted
                for wanted, have in (
                    (query.status, req.status),
                    (query.tool, req.tool),
                    (query.agent_id, req.run.agent_id),
                    (query.risk, req.risk),
                    (query.requested_by, req.requested_by),
                )
            ):
                continue
            items.append(req)
            if len(items) > query.limit:
                break
        more = len(items) > query.limit
        items = items[: query.limit]
        cursor = encode_cursor(self._seq[items[-1].id]) if more and items else None
        return Page(items=items, next_cursor=cursor)

    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        with self._lock:
            due = [
                v.request
                for v in self._requests.values()
                if v.request.status is Status.PENDING and v.request.expires_at <= now
            ]
        due.sort(key=lambda r: r.expires_at)
        return [r.id for r in due[:limit]]

    async def next_expiry(self) -> datetime | None:
        with self._lock:
            pending = [
                v.request.expires_at
                for v in self._requests.values()
                if v.request.status is Status.PENDING
            ]
        return min(pending, default=None)

    async def audit_events(
        self, *, request_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        with self._lock:
            seals = {link.position: link for link in self.raw_chain}
            by_seq = {link.seq: link for link in self.raw_chain}
            out = []
            for event in self.raw_events:
                if event.position <= after:
                    continue
                if request_id is not None and event.request_id != request_id:
                    continue
                link = seals.get(event.position)
                prev = None
                if link is not None:
                    before = by_seq.get(link.seq - 1)
                    prev = GENESIS if link.seq == 1 else (before.hash if before else None)
                out.append(
                    AuditEvent(
                        event.position,
                        event.record,
                        None if link is None else link.seq,
                        None if link is None else link.hash,
                        prev,
                    )
                )
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        out: list[Event] = []
        prev = after_id
        with self._lock:
            for event in self.raw_events:
                if event.position <= after_id or event.live is None or event.request_id is None:
                    continue
                # a replayed event carries the request as it is now, as the SQL stores do
                request = self._requests[event.request_id].request
                out.append(
                    Event(event.position, event.live, event.request_id, event.at, request, prev)
                )
                prev = event.position
                if len(out) >= limit:
                    break
        return out

    async def last_event_id(self) -> int:
        return self._top()

    async def count_by_status(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for current in self._requests.values():
                status = current.request.status.value
                counts[status] = counts.get(status, 0) + 1
        return counts

    async def requests_page(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, ApprovalRequest | None, str]]:
        with self._lock:
            rows = sorted((seq, rid) for rid, seq in self._seq.items() if seq > after_seq)
            picked = rows[:limit]
            return [(seq, self._requests[rid].request, "") for seq, rid in picked]

    # -- sealing --------------------------------------------------------------------------

    async def chain_head(self) -> Link | None:
        return self.raw_chain[-1] if self.raw_chain else None

    async def unsealed(self, after_position: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            found = [
                StoredEvent(e.position, e.record, e.state)
                for e in self.raw_events
                if e.position > after_position
            ]
        return found[:limit]

    async def seal(self, head: Link | None, links: list[Link], checkpoint: Checkpoint) -> bool:
        with self._lock:
            if (self.raw_chain[-1] if self.raw_chain else None) != head:
                return False
            self.raw_chain.extend(links)
            self.raw_checkpoints.append(checkpoint)
        return True

    async def sealed(self, after_seq: int, limit: int) -> list[SealedRow]:
        with self._lock:
            events = {e.position: e for e in self.raw_events}
            rows = []
            for link in self.raw_chain:
                if link.seq <= after_seq:
                    continue
                event = events.get(link.position)
                rows.append(
                    SealedRow(
                        link.seq,
                        link.position,
                        link.hash,
                        None if event is None else event.record,
                        None if event is None else event.state,
                    )
                )
                if len(rows) >= limit:
                    break
        return rows

    async def checkpoints(self, after_size: int = 0, limit: int = 1000) -> list[Checkpoint]:
        with self._lock:
            found = sorted(
                (c for c in self.raw_checkpoints if c.size > after_size), key=lambda c: c.size
            )
        return found[:limit]

    async def unsealed_below(self, position: int, limit: int = 10) -> list[int]:
        with self._lock:
            sealed = {link.position for link in self.raw_chain}
            found = [
                e.position
                for e in self.raw_events
                if e.position <= position and e.position not in sealed
            ]
        return found[:limit]

    # -- runs and tokens ------------------------------------------------------------------

    async def save_run(self, record: RunRecord) -> None:
        with self._lock:
            self._runs[(record.owner, record.run_id)] = record

    async def get_run(self, owner: str, run_id: str) -> RunRecord | None:
        return self._runs.get((owner, run_id))

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        with self._lock:
            runs = [
                r
                for r in self._runs.values()
                if (query.status is None or r.status == query.status)
                and (query.owner is None or r.owner == query.owner)
                and (query.run_id is None or r.run_id == query.run_id)
            ]
        runs.sort(key=lambda r: r.updated_at, reverse=True)
        return runs[: query.limit]

    async def spend(self, key: str, until: datetime) -> bool:
        now = datetime.now(UTC)
        with self._lock:
            self._spent = {k: v for k, v in self._spent.items() if v > now}
            if key in self._spent:
                return False
            self._spent[key] = until
        return True

    async def is_spent(self, key: str) -> bool:
        with self._lock:
            until = self._spent.get(key)
        return until is not None and until > datetime.now(UTC)

    # -- for tests: flip a request's row behind the store's back -------------------------

    def tamper_request(self, request: ApprovalRequest) -> None:
        with self._lock:
            current = self._requests[request.id]
            self._requests[request.id] = Versioned(request, current.version)
