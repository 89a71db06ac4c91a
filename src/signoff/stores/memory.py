"""An in-process store: for tests, benchmarks and throwaway runs. Nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from signoff.audit import GENESIS, AuditEntry, AuditEvent, iso, seal
from signoff.errors import NotFound
from signoff.events import Event
from signoff.models import ApprovalRequest, Page, RunRecord, Status
from signoff.stores.base import (
    Created,
    ListQuery,
    RunQuery,
    Store,
    Transitioned,
    TransitionFn,
    check_audited,
    decode_cursor,
    encode_cursor,
)


class MemoryStore(Store):
    """Keeps everything in dicts. Writes are atomic because they never await, and a lock
    keeps them atomic if threads share the store too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, datetime] = {}
        self._requests: dict[str, ApprovalRequest] = {}
        self._seq: dict[str, int] = {}
        self._by_key: dict[str, str] = {}
        self._audit: list[AuditEvent] = []
        self._runs: dict[tuple[str, str], RunRecord] = {}
        self._events: list[Event] = []
        self._next_seq = 1

    # -- helpers (call with the lock held) -------------------------------------------------

    def _append_audit(self, entry: AuditEntry) -> None:
        prev = self._audit[-1].hash if self._audit else GENESIS
        self._audit.append(seal(entry, len(self._audit) + 1, prev))

    def _emit(self, types: Sequence[str], request: ApprovalRequest, at: datetime) -> list[Event]:
        out = []
        for type_ in types:
            event = Event(len(self._events) + 1, type_, request.id, iso(at), request)
            self._events.append(event)
            out.append(event)
        return out

    # -- Store --------------------------------------------------------------------------

    async def create(
        self, request: ApprovalRequest, audit: AuditEntry, events: Sequence[str]
    ) -> Created:
        with self._lock:
            key = request.idempotency_key
            if key is not None and key in self._by_key:
                return Created(self._requests[self._by_key[key]], created=False)
            self._requests[request.id] = request
            self._seq[request.id] = self._next_seq
            self._next_seq += 1
            if key is not None:
                self._by_key[key] = request.id
            self._append_audit(audit)
            return Created(request, True, self._emit(events, request, audit.at))

    async def get(self, request_id: str) -> ApprovalRequest | None:
        return self._requests.get(request_id)

    async def list_requests(self, query: ListQuery) -> Page:
        before = decode_cursor(query.cursor) if query.cursor else None
        with self._lock:
            ordered = sorted(self._requests.values(), key=lambda r: self._seq[r.id], reverse=True)
        items: list[ApprovalRequest] = []
        for req in ordered:
            seq = self._seq[req.id]
            if before is not None and seq >= before:
                continue
            if query.status is not None and req.status != query.status:
                continue
            if query.tool is not None and req.tool != query.tool:
                continue
            if query.agent_id is not None and req.run.agent_id != query.agent_id:
                continue
            if query.risk is not None and req.risk != query.risk:
                continue
            if query.requested_by is not None and req.requested_by != query.requested_by:
                continue
            items.append(req)
            if len(items) > query.limit:
                break
        more = len(items) > query.limit
        items = items[: query.limit]
        cursor = encode_cursor(self._seq[items[-1].id]) if more and items else None
        return Page(items=items, next_cursor=cursor)

    async def transition(self, request_id: str, fn: TransitionFn) -> Transitioned:
        with self._lock:
            current = self._requests.get(request_id)
            if current is None:
                raise NotFound(f"no approval request {request_id}")
            change = fn(current)
            events: list[Event] = []
            if change.request is not None:
                check_audited(change)
                self._requests[request_id] = change.request
                events = self._emit(change.events, change.request, change.audit[-1].at)
            for entry in change.audit:
                self._append_audit(entry)
        if change.error is not None:
            raise change.error
        return Transitioned(change.request or current, events)

    async def due_for_expiry(self, now: datetime, limit: int = 500) -> list[str]:
        with self._lock:
            due = [
                r
                for r in self._requests.values()
                if r.status is Status.PENDING and r.expires_at <= now
            ]
        due.sort(key=lambda r: r.expires_at)
        return [r.id for r in due[:limit]]

    async def next_expiry(self) -> datetime | None:
        with self._lock:
            pending = [r.expires_at for r in self._requests.values() if r.status is Status.PENDING]
        return min(pending, default=None)

    async def append_audit(self, entry: AuditEntry) -> None:
        with self._lock:
            self._append_audit(entry)

    async def audit_events(
        self, *, request_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        with self._lock:
            events = self._audit[after_seq:]
        if request_id is not None:
            events = [e for e in events if e.request_id == request_id]
        return events if limit is None else events[:limit]

    async def events_after(self, after_id: int, limit: int = 1000) -> list[Event]:
        with self._lock:
            stored = self._events[max(after_id, 0) : max(after_id, 0) + limit]
            # a replayed event carries the request as it is now, as the SQL stores do
            return [
                Event(e.id, e.type, e.request_id, e.at, self._requests[e.request_id])
                for e in stored
            ]

    async def last_event_id(self) -> int:
        return len(self._events)

    async def count_by_status(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for request in self._requests.values():
                counts[request.status.value] = counts.get(request.status.value, 0) + 1
        return counts

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

    # -- for tests: the raw audit list, so that tamper tests can alter it ------------------

    @property
    def raw_audit(self) -> list[AuditEvent]:
        return self._audit
