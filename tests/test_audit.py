"""The audit chain: every change is recorded, and any tampering is found."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from signoff.audit import AuditEvent, chain_hash, verify
from signoff.canonical import canonical_json
from signoff.models import Principal
from signoff.service import ApprovalService
from signoff.stores.base import Store
from signoff.stores.memory import MemoryStore
from signoff.stores.postgres import PostgresStore
from signoff.stores.sqlite import SqliteStore
from tests.conftest import ADMIN, AGENT, EDITOR, PUBLISHER, ManualClock, refund_spec


async def _history(service: ApprovalService, clock: ManualClock) -> None:
    """Create, refuse, approve, consume, report, reject, cancel, expire: every event type."""
    a = (await service.submit(refund_spec(), AGENT)).request
    with pytest.raises(Exception, match="needs 'publisher'"):
        await service.decide(a.id, EDITOR, "approve")
    await service.decide(a.id, PUBLISHER, "approve", modified_args={"amount": 100})
    await service.consume(a.id, AGENT)
    await service.record_outcome(a.id, AGENT, "succeeded", {"refund_id": "rf_1"})
    b = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(b.id, ADMIN, "reject", reason="too much")
    c = (await service.submit(refund_spec(), AGENT)).request
    await service.cancel(c.id, AGENT, "user changed their mind")
    d = (await service.submit(refund_spec(), AGENT)).request
    clock.advance(301)
    await service.expire(d.id)


async def test_every_state_change_is_audited(service: ApprovalService, clock: ManualClock) -> None:
    await _history(service, clock)
    events = await service.audit_events(ADMIN)
    assert [e.type for e in events] == [
        "request.created",
        "decision.refused",
        "request.approved",
        "request.consumed",
        "request.outcome",
        "request.created",
        "request.rejected",
        "request.created",
        "request.cancelled",
        "request.created",
        "request.expired",
    ]
    refused = events[1]
    assert refused.actor == {"sub": "erin", "kind": "approver", "role": "editor"}
    assert refused.type == "decision.refused" and refused.seq == 2
    assert refused.data["error"] == "forbidden"
    approved = events[2]
    assert approved.data["modified_args"] == {"amount": 100}
    assert approved.actor["sub"] == "paul"
    assert events[-1].actor["sub"] == "system:timeout"
    result = await service.verify_audit(ADMIN)
    assert result.ok
    assert result.events == len(events)
    assert result.head == events[-1].hash


async def test_only_the_highest_role_reads_the_audit(service: ApprovalService) -> None:
    from signoff.errors import Forbidden

    for who in (PUBLISHER, AGENT, Principal(sub="x", role="admin", kind="agent")):
        with pytest.raises(Forbidden):
            await service.audit_events(who)
        with pytest.raises(Forbidden):
            await service.verify_audit(who)


# -- tampering ---------------------------------------------------------------------------


def _sqlite(store: Store) -> sqlite3.Connection:
    assert isinstance(store, SqliteStore)
    conn = sqlite3.connect(store.path, isolation_level=None)
    # an attacker with the file can drop the append-only triggers first
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    return conn


def _postgres(
    store: PostgresStore, statement: str, params: Sequence[object] = ()
) -> list[tuple[Any, ...]]:
    """Run ``statement`` as an attacker with the database's owner role would: with the
    append-only triggers dropped first."""
    assert isinstance(store.pool.conninfo, str)
    with psycopg.connect(store.pool.conninfo, autocommit=True) as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_no_update ON audit")
        conn.execute("DROP TRIGGER IF EXISTS audit_no_delete ON audit")
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _sql(store: Store, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """``statement`` (with ``?`` placeholders) on the store's database, triggers dropped."""
    if isinstance(store, PostgresStore):
        return _postgres(store, statement.replace("?", "%s"), params)
    return _sqlite(store).execute(statement, params).fetchall()


def _events(store: Store) -> list[AuditEvent]:
    if isinstance(store, MemoryStore):
        return list(store.raw_audit)
    rows = _sql(store, "SELECT record, prev_hash, hash FROM audit ORDER BY seq")
    return [AuditEvent(*row) for row in rows]


def _put(store: Store, seq: int, event: AuditEvent) -> None:
    if isinstance(store, MemoryStore):
        store.raw_audit[seq - 1] = event
    else:
        _sql(
            store,
            "UPDATE audit SET record=?, prev_hash=?, hash=? WHERE seq=?",
            (event.record, event.prev_hash, event.hash, seq),
        )


def _edited(event: AuditEvent, **changes: object) -> str:
    body = event.body
    for key, value in changes.items():
        if key == "reason":
            body["data"] = {**body["data"], "reason": value}
        else:
            body[key] = value
    return canonical_json(body)


def alter(store: Store, seq: int) -> None:
    event = _events(store)[seq - 1]
    _put(store, seq, dataclasses.replace(event, record=_edited(event, reason="forged")))


def alter_actor_and_rehash(store: Store, seq: int) -> None:
    """A forger who recomputes the altered event's own hash still breaks the next link."""
    event = _events(store)[seq - 1]
    record = _edited(event, actor={**event.actor, "sub": "mallory"})
    _put(store, seq, AuditEvent(record, event.prev_hash, chain_hash(event.prev_hash, record)))


def alter_whitespace(store: Store, seq: int) -> None:
    """The same JSON, written differently: the stored bytes are what is hashed."""
    event = _events(store)[seq - 1]
    _put(store, seq, dataclasses.replace(event, record=event.record.replace(":", ": ", 1)))


def delete(store: Store, seq: int) -> None:
    if isinstance(store, MemoryStore):
        del store.raw_audit[seq - 1]
    else:
        _sql(store, "DELETE FROM audit WHERE seq=?", (seq,))


def reorder(store: Store, seq: int) -> None:
    """Swap two neighbouring events."""
    events = _events(store)
    _put(store, seq, events[seq])
    _put(store, seq + 1, events[seq - 1])


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (alter, "altered"),
        (alter_actor_and_rehash, "removed or moved"),
        (alter_whitespace, "altered"),
        (delete, "missing or moved"),
        (reorder, "moved"),
    ],
    ids=["change", "change-and-rehash", "reformat", "delete", "reorder"],
)
@pytest.mark.parametrize("seq", [1, 3, 6])
async def test_tampering_is_found_at_the_first_bad_event(
    service: ApprovalService,
    store: Store,
    clock: ManualClock,
    tamper: object,
    reason: str,
    seq: int,
) -> None:
    await _history(service, clock)
    assert (await service.verify_audit(ADMIN)).ok
    tamper(store, seq)  # type: ignore[operator]
    result = await service.verify_audit(ADMIN)
    assert not result.ok
    assert result.first_bad is not None
    expected_seq = seq + 1 if tamper in (alter_actor_and_rehash, delete, reorder) else seq
    assert result.first_bad["seq"] == expected_seq
    assert reason in result.first_bad["reason"]


async def test_deleting_the_last_event_is_only_visible_against_a_kept_head(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    """The documented limit of a bare chain: truncation shows as a different head."""
    await _history(service, clock)
    head = (await service.verify_audit(ADMIN)).head
    count = len(await store.audit_events())
    delete(store, count)
    result = await service.verify_audit(ADMIN)
    assert result.ok
    assert result.head != head


async def test_sqlite_refuses_to_change_or_delete_audit_events(
    tmp_path: object, clock: ManualClock
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "a.db"
    store = SqliteStore(path)
    async with ApprovalService(store, clock=clock, sweep=False) as service:
        await service.submit(refund_spec(), AGENT)
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET record='{}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")


async def test_postgres_refuses_to_change_or_delete_audit_events(
    postgres_url: str, clock: ManualClock
) -> None:
    async with ApprovalService(
        PostgresStore.from_url(postgres_url, min_size=1), clock=clock, sweep=False
    ) as service:
        await service.submit(refund_spec(), AGENT)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in ("UPDATE audit SET record = '{}'", "DELETE FROM audit", "TRUNCATE audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (1,)


def test_verify_of_an_empty_chain() -> None:
    result = verify([])
    assert result.ok
    assert result.events == 0
