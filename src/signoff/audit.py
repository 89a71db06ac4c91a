"""The tamper-evident audit chain.

Every state change of a request appends one event in the same transaction as the change.
Each event carries a gapless ``seq`` and ``hash = SHA-256("signoff-audit-v1" 0x00 prev_hash
0x00 JCS(body))`` where ``body`` holds every field but the hashes. Changing, removing or
reordering any stored event breaks the chain from that event on, and :func:`verify` names
the first event where it breaks.

A bare chain cannot reveal that its newest events were cut off, or that the whole chain was
rewritten: keep the ``head`` that :func:`verify` returns somewhere the database's writer
cannot change (a ticket, a log shipper) and compare it later.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from signoff.canonical import canonical_json
from signoff.types import JSONObject

GENESIS = "0" * 64
_DOMAIN = b"signoff-audit-v1\x00"


def iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit event before the store places it in the chain."""

    type: str
    request_id: str | None
    actor: JSONObject
    at: datetime
    via: str | None = None
    data: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An audit event as stored: its canonical JSON ``record`` and its place in the chain.

    The record is hashed as stored, byte for byte; the other fields are read from it.
    """

    record: str
    prev_hash: str
    hash: str

    @property
    def body(self) -> JSONObject:
        parsed: JSONObject = json.loads(self.record)
        return parsed

    @property
    def seq(self) -> int:
        return int(self.body["seq"])

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def request_id(self) -> str | None:
        value = self.body["request_id"]
        return None if value is None else str(value)

    @property
    def actor(self) -> JSONObject:
        actor: JSONObject = self.body["actor"]
        return actor

    @property
    def at(self) -> str:
        return str(self.body["at"])

    @property
    def via(self) -> str | None:
        value = self.body["via"]
        return None if value is None else str(value)

    @property
    def data(self) -> JSONObject:
        data: JSONObject = self.body["data"]
        return data

    def to_dict(self) -> JSONObject:
        return {**self.body, "prev_hash": self.prev_hash, "hash": self.hash}


def chain_hash(prev_hash: str, record: str) -> str:
    h = hashlib.sha256(_DOMAIN)
    h.update(prev_hash.encode())
    h.update(b"\x00")
    h.update(record.encode())
    return h.hexdigest()


def seal(entry: AuditEntry, seq: int, prev_hash: str) -> AuditEvent:
    """Place ``entry`` in the chain after an event whose hash is ``prev_hash``."""
    record = canonical_json(
        {
            "seq": seq,
            "type": entry.type,
            "request_id": entry.request_id,
            "actor": entry.actor,
            "at": iso(entry.at),
            "via": entry.via,
            "data": entry.data,
        }
    )
    return AuditEvent(record, prev_hash, chain_hash(prev_hash, record))


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    events: int
    head: str
    #: the first event where the chain breaks, and why
    first_bad: JSONObject | None = None

    def to_dict(self) -> JSONObject:
        out: dict[str, Any] = {"ok": self.ok, "events": self.events, "head": self.head}
        if self.first_bad is not None:
            out["first_bad"] = self.first_bad
        return out


def verify(events: Iterable[AuditEvent]) -> Verification:
    """Recompute the chain over ``events`` (in stored order) and find the first break."""
    check = ChainCheck()
    check.feed(events)
    return check.result()


class ReadPage(Protocol):
    async def __call__(self, *, after_seq: int, limit: int) -> list[AuditEvent]: ...


async def verify_pages(read: ReadPage, *, page: int = 5000) -> Verification:
    """Verify a chain read ``page`` events at a time (``read(after_seq=, limit=)``), each page
    hashed in a worker thread: a long chain never holds the event loop or all of memory."""
    check = ChainCheck()
    while not check.broken:
        events = await read(after_seq=check.next_seq - 1, limit=page)
        await asyncio.to_thread(check.feed, events)
        if len(events) < page:
            break
    return check.result()


class ChainCheck:
    """Verification fed page by page (a long chain need not be in memory at once, and each
    page can be checked in a worker thread); stops at the first break."""

    def __init__(self) -> None:
        self._prev, self._expected, self._count = GENESIS, 1, 0
        self._bad: JSONObject | None = None

    @property
    def broken(self) -> bool:
        return self._bad is not None

    @property
    def next_seq(self) -> int:
        """The seq the next event must have."""
        return self._expected

    def feed(self, events: Iterable[AuditEvent]) -> None:
        if self._bad is not None:
            return
        for event in events:
            self._count += 1
            problem = _problem(event, self._prev, self._expected)
            if problem is not None:
                try:
                    found = int(event.seq)
                except (ValueError, KeyError, TypeError):
                    found = self._expected
                self._bad = {"seq": found, "position": self._count, "reason": problem}
                return
            self._prev, self._expected = event.hash, self._expected + 1

    def result(self) -> Verification:
        return Verification(
            ok=self._bad is None, events=self._count, head=self._prev, first_bad=self._bad
        )


def _problem(event: AuditEvent, prev: str, expected_seq: int) -> str | None:
    altered = "the event's content does not match its hash: it was altered"
    hash_ok = chain_hash(prev, event.record) == event.hash
    if event.prev_hash == prev and not hash_ok:
        return altered
    try:
        body = json.loads(event.record)
        seq = body["seq"]
        canonical = canonical_json(body) == event.record
    except (ValueError, KeyError, TypeError):
        return "the event cannot be read: it was altered"
    if not canonical:
        return "the event is not in canonical form: it was altered"
    if seq != expected_seq:
        return f"expected seq {expected_seq}, found {seq}: an event is missing or moved"
    if event.prev_hash != prev:
        return "prev_hash does not match the previous event: an event was removed or moved"
    if not hash_ok:
        return altered
    return None
