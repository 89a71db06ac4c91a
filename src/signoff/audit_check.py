"""``audit verify``: the chain, its signed checkpoints, and the rows against their events.

What each check finds (docs/security.md, "The audit log"):

- a changed event: its record no longer hashes to its link;
- a deleted event: its link points at nothing, or the chain's seq skips;
- an inserted event: below the sealed history but not in the chain;
- reordered events: their positions no longer increase along the chain;
- a rewritten history with every hash recomputed: a signed checkpoint's head differs from
  the chain's (the rewriter cannot sign without the server's key);
- a cut-off tail: the chain is shorter than the newest signed checkpoint, or than a
  checkpoint exported elsewhere (``--against``);
- links with no checkpoint over them, or a checkpoint whose signature does not verify with
  a trusted key;
- a request whose row disagrees with the state its events leave it in
  (:mod:`signoff.evidence`), or an event whose copied-out state disagrees with its record.

:class:`ChainCheck` is fed pages of the chain (from the store, or from an exported log) and
stops at the first break; :func:`verify_store` drives it over a store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from signoff.audit import GENESIS, AuditEvent, Checkpoint, link_hash
from signoff.evidence import StateFold, state_after
from signoff.stores.base import SealedRow, Store, StoredEvent

#: links and events read (and hashed, in a worker thread) at a time
PAGE = 5000
#: events older than this with no seal at all mean the seals were removed
NEVER_SEALED_AFTER = timedelta(minutes=10)
#: disagreeing rows listed in a report (all are counted)
MAX_LISTED = 20


class TrustedKeys(Protocol):
    def trusted(self, kid: str) -> Any: ...


@dataclass(slots=True)
class Verification:
    ok: bool
    #: every event in the log, sealed or not
    events: int
    #: the chain's head: what a checkpoint signs, and what to keep elsewhere
    head: str
    sealed: int = 0
    unsealed: int = 0
    #: the newest checkpoint, verified
    checkpoint: dict[str, Any] | None = None
    #: the first break, and why
    first_bad: dict[str, Any] | None = None
    #: rows that disagree with their events
    mismatched: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "sealed": self.sealed,
            "unsealed": self.unsealed,
            "checkpoint": self.checkpoint,
            "mismatched": self.mismatched,
        }
        if self.first_bad is not None:
            out["first_bad"] = self.first_bad
        if self.mismatches:
            out["mismatches"] = self.mismatches
        return out


class ChainCheck:
    """The chain verified page by page against a set of checkpoints."""

    def __init__(self, checkpoints: Iterable[Checkpoint], keys: TrustedKeys) -> None:
        self.keys = keys
        self.known = list(checkpoints)
        self.expected: dict[int, list[Checkpoint]] = {}
        for checkpoint in self.known:
            self.expected.setdefault(checkpoint.size, []).append(checkpoint)
        self.size = 0
        self.head = GENESIS
        self.position = 0
        self.bad: dict[str, Any] | None = None
        self.fold = StateFold()
        #: heads at sizes past the last checkpoint known at the start (for ones added since)
        self.tail: dict[int, str] = {}
        self._watermark = max(self.expected, default=0)

    def _break(self, reason: str, **where: Any) -> None:
        self.bad = {**where, "reason": reason}

    def feed(self, rows: Iterable[SealedRow]) -> None:
        for row in rows:
            if self.bad is not None:
                return
            self._one(row)

    def _one(self, row: SealedRow) -> None:
        seq, position = row.seq, row.position
        if seq != self.size + 1:
            self._break(
                f"the chain skips from seq {self.size} to {seq}: links were removed", seq=seq
            )
            return
        if position <= self.position:
            self._break("positions go back along the chain: events were reordered", seq=seq)
            return
        if row.record is None:
            self._break(f"the event at position {position} was deleted", seq=seq)
            return
        computed = link_hash(self.head, seq, position, row.record)
        if computed != row.hash:
            self._break("the event's record or link was altered: the hash does not match", seq=seq)
            return
        try:
            body = json.loads(row.record)
            state = state_after(body["type"], body.get("data") or {})
            request_id = body["request_id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            self._break("the event cannot be read", seq=seq)
            return
        if row.state != state:
            self._break("the event's stored state disagrees with its record", seq=seq)
            return
        self.fold.feed(request_id, state)
        if any(c.head != computed for c in self.expected.get(seq, ())):
            self._break(
                f"the checkpoint at size {seq} signed another head: the history was rewritten",
                seq=seq,
            )
            return
        if seq > self._watermark:
            self.tail[seq] = computed
        self.size, self.head, self.position = seq, computed, position

    def check_checkpoints(
        self, newer: Iterable[Checkpoint] = (), *, covered: bool = True
    ) -> dict[str, Any] | None:
        """Verify every checkpoint's signature and size; returns the newest one checked.
        ``newer`` are checkpoints that appeared while the chain was read. ``covered``: every
        link must lie under a checkpoint (all of the log's checkpoints are known)."""
        known = list(self.known)
        if self.bad is not None:
            return None
        for checkpoint in newer:
            if checkpoint.size > self.size:
                continue  # sealed after the chain was read
            if self.tail.get(checkpoint.size) != checkpoint.head:
                self._break(
                    f"the checkpoint at size {checkpoint.size} signed another head: the "
                    "history was rewritten",
                    seq=checkpoint.size,
                )
                return None
            known.append(checkpoint)
        for checkpoint in known:
            if (problem := self.signature_problem(checkpoint)) is not None:
                self._break(problem, seq=checkpoint.size)
                return None
        newest = max(known, key=lambda c: c.size, default=None)
        if newest is not None and newest.size > self.size:
            self._break(
                f"the chain ends at seq {self.size} but a signed checkpoint covers "
                f"{newest.size}: its tail was cut off",
                seq=self.size + 1,
            )
            return None
        if covered and self.size > (0 if newest is None else newest.size):
            self._break(
                f"links after seq {0 if newest is None else newest.size} have no signed "
                "checkpoint: they were not written by the sealer",
                seq=(0 if newest is None else newest.size) + 1,
            )
            return None
        return None if newest is None else newest.to_dict()

    def signature_problem(self, checkpoint: Checkpoint) -> str | None:
        key = self.keys.trusted(checkpoint.kid)
        if key is None:
            return f"the checkpoint at size {checkpoint.size} is signed by an untrusted key"
        try:
            signature = checkpoint.signature_bytes()
        except ValueError:
            signature = b""
        if not key.verifies(signature, checkpoint.payload()):
            return f"the checkpoint at size {checkpoint.size} has a signature that does not verify"
        return None


def verify_export(
    events: Iterable[AuditEvent], checkpoints: Iterable[Checkpoint], keys: TrustedKeys
) -> Verification:
    """Verify an exported log (``signoff audit export``) against checkpoints kept elsewhere
    (``signoff audit checkpoint export``), with no server and no database: each sealed
    event's record is rebuilt from its exported fields and hashed."""
    check = ChainCheck(checkpoints, keys)
    unsealed = 0
    sealed: list[SealedRow] = []
    for event in events:
        if event.seq is None or event.hash is None:
            unsealed += 1
            continue
        try:
            body = json.loads(event.record)
            state = state_after(body["type"], body.get("data") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            state = None
        sealed.append(SealedRow(event.seq, event.position, event.hash, event.record, state))
    sealed.sort(key=lambda row: row.seq)
    check.feed(sealed)
    checkpoint = check.check_checkpoints(covered=False)
    if check.bad is None and not check.known:
        check._break("no checkpoint to verify against: pass --against with an exported one")
    return Verification(
        ok=check.bad is None,
        events=check.size + unsealed,
        head=check.head,
        sealed=check.size,
        unsealed=unsealed,
        checkpoint=checkpoint,
        first_bad=check.bad,
    )


async def verify_store(
    store: Store,
    keys: TrustedKeys,
    *,
    against: Checkpoint | None = None,
    now: datetime | None = None,
) -> Verification:
    """Verify ``store``'s log, its checkpoints (and ``against``) and its rows."""
    now = now or datetime.now(UTC)
    checkpoints = await _all_checkpoints(store, 0)
    check = ChainCheck([*checkpoints, *([against] if against else [])], keys)
    while check.bad is None:
        rows = await store.sealed(check.size, PAGE)
        await asyncio.to_thread(check.feed, rows)
        if len(rows) < PAGE:
            break
    newest_known = max((c.size for c in checkpoints), default=0)
    newer = await _all_checkpoints(store, newest_known)
    checkpoint = check.check_checkpoints(newer)
    unsealed = await _unsealed(store, check)
    if check.bad is None and check.size > 0:
        inserted = await store.unsealed_below(check.position)
        if inserted:
            check._break(
                f"the event at position {inserted[0]} is below the sealed history but not in "
                "it: it was inserted",
                position=inserted[0],
            )
    oldest = unsealed.oldest
    never_sealed = check.size == 0 and oldest is not None and now - oldest > NEVER_SEALED_AFTER
    if check.bad is None and never_sealed:
        check._break(
            "events older than ten minutes have no seal at all: the log was never sealed "
            "or its seals were removed",
            position=unsealed.first,
        )
    result = Verification(
        ok=check.bad is None,
        events=check.size + unsealed.count,
        head=check.head,
        sealed=check.size,
        unsealed=unsealed.count,
        checkpoint=checkpoint,
        first_bad=check.bad,
    )
    if check.bad is None:
        await _compare_rows(store, check.fold, result)
    return result


@dataclass(slots=True)
class _Unsealed:
    count: int = 0
    first: int | None = None
    oldest: datetime | None = None


async def _unsealed(store: Store, check: ChainCheck) -> _Unsealed:
    """Fold the events past the chain into the states, checking their state columns."""
    found = _Unsealed()
    after = check.position
    while True:
        events = await store.unsealed(after, PAGE)
        for event in events:
            problem = _fold_unsealed(check.fold, event, found)
            if problem is not None and check.bad is None:
                check._break(problem, position=event.position)
        if len(events) < PAGE:
            return found
        after = events[-1].position


def _fold_unsealed(fold: StateFold, event: StoredEvent, found: _Unsealed) -> str | None:
    found.count += 1
    if found.first is None:
        found.first = event.position
    try:
        body = json.loads(event.record)
        state = state_after(body["type"], body.get("data") or {})
        at = datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "the event cannot be read"
    if found.oldest is None or at < found.oldest:
        found.oldest = at
    fold.feed(body.get("request_id"), state)
    if event.state != state:
        return "the event's stored state disagrees with its record"
    return None


async def _compare_rows(store: Store, fold: StateFold, result: Verification) -> None:
    """Every request's row against the state its events leave it in. A row that seems to
    disagree is read again with its events (a write may have landed while reading)."""
    after = 0
    suspects: list[str] = []
    while True:
        rows = await store.requests_page(after, PAGE)
        for seq, request, body in rows:
            after = seq
            if request is None:
                suspects.append(_id_of(body))
            elif fold.disagreement(request) is not None:
                suspects.append(request.id)
        if len(rows) < PAGE:
            break
    for request_id in suspects:
        problem = await _recheck(store, request_id)
        if problem is not None:
            result.mismatched += 1
            if len(result.mismatches) < MAX_LISTED:
                result.mismatches.append(problem)
    if result.mismatched:
        result.ok = False


async def _recheck(store: Store, request_id: str) -> dict[str, Any] | None:
    fold = StateFold()
    for event in await store.audit_events(request_id=request_id):
        try:
            body = event.body
            fold.feed(request_id, state_after(body["type"], body.get("data") or {}))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    try:
        request = await store.get(request_id)
    except ValueError:
        request = None
    if request is None:
        return {
            "request_id": request_id,
            "row": "unreadable",
            "events": fold.states.get(request_id),
        }
    return fold.disagreement(request)


def _id_of(body: str) -> str:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return "?"
    return str(value)


async def _all_checkpoints(store: Store, after: int) -> list[Checkpoint]:
    found: list[Checkpoint] = []
    while True:
        page = await store.checkpoints(after, PAGE)
        found.extend(page)
        if len(page) < PAGE:
            return found
        after = page[-1].size
