"""The audit log: every change is recorded, sealed under signed checkpoints, and any
tampering with the database is found (docs/security.md, "The audit log")."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from signoff.audit import GENESIS, AuditEntry, Checkpoint, link_hash, signed
from signoff.canonical import canonical_json
from signoff.errors import StateMismatch
from signoff.keys import Keyring
from signoff.models import Principal, Status
from signoff.service import ApprovalService
from signoff.stores.base import Store
from signoff.stores.postgres import PostgresStore
from signoff.stores.sqlite import SqliteStore
from tests.conftest import ADMIN, AGENT, EDITOR, PUBLISHER, ManualClock, refund_spec
from tests.helpers.tamper import (
    add_checkpoint,
    delete_checkpoints_from,
    delete_event,
    delete_links_from,
    insert_event,
    links,
    log_rows,
    reopen,
    replace_links,
    set_event,
    tamper,
)


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


async def _sealed(service: ApprovalService) -> None:
    await service.store.settle()
    await service.audit_log.seal()


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
    assert refused.type == "decision.refused" and not refused.sealed
    assert refused.data["error"] == "forbidden"
    approved = events[2]
    assert approved.data["modified_args"] == {"amount": 100}
    assert approved.actor["sub"] == "paul"
    assert events[-1].actor["sub"] == "system:timeout"
    await _sealed(service)
    sealed = await service.audit_events(ADMIN)
    assert [e.seq for e in sealed] == list(range(1, 12))
    assert sealed[0].prev_hash == GENESIS
    result = await service.verify_audit(ADMIN)
    assert result.ok, result.first_bad
    assert result.events == result.sealed == len(events)
    assert result.head == sealed[-1].hash
    assert result.checkpoint is not None and result.checkpoint["size"] == len(events)


async def test_only_the_highest_role_reads_the_audit(service: ApprovalService) -> None:
    from signoff.errors import Forbidden

    for who in (PUBLISHER, AGENT, Principal(sub="x", role="admin", kind="agent")):
        with pytest.raises(Forbidden):
            await service.audit_events(who)
        with pytest.raises(Forbidden):
            await service.verify_audit(who)
        with pytest.raises(Forbidden):
            await service.checkpoints(who)


async def test_unsealed_events_verify_and_are_counted(
    service: ApprovalService, clock: ManualClock
) -> None:
    await _history(service, clock)
    await _sealed(service)
    await service.submit(refund_spec(), AGENT)
    result = await service.verify_audit(ADMIN)
    assert result.ok and result.unsealed == 1 and result.events == result.sealed + 1


# -- tampering with the database ----------------------------------------------------------


def _forged(record: str, **changes: object) -> str:
    body = dict(__import__("json").loads(record))
    body["data"] = {**body["data"], **changes}
    return canonical_json(body)


def change(store: Store, seq: int) -> None:
    position, record, _ = _row(store, seq)
    set_event(store, position, record=_forged(record, reason="forged"))


def change_and_relink(store: Store, seq: int) -> None:
    """A forger who recomputes the changed event's own link still breaks the next one."""
    position, record, _ = _row(store, seq)
    forged = _forged(record, reason="forged")
    set_event(store, position, record=forged)
    chain = links(store)
    prev = GENESIS if seq == 1 else chain[seq - 2].hash
    replace_links(
        store, [chain[seq - 1].__class__(seq, position, link_hash(prev, seq, position, forged))]
    )


def reformat(store: Store, seq: int) -> None:
    """The same JSON, written differently: the stored bytes are what is hashed."""
    position, record, _ = _row(store, seq)
    set_event(store, position, record=record.replace(":", ": ", 1))


def delete(store: Store, seq: int) -> None:
    delete_event(store, _row(store, seq)[0])


def reorder(store: Store, seq: int) -> None:
    """Swap two neighbouring events."""
    (p1, r1, s1), (p2, r2, s2) = _row(store, seq), _row(store, seq + 1)
    set_event(store, p1, record=r2, state=s2)
    set_event(store, p2, record=r1, state=s1)


def flip_state(store: Store, seq: int) -> None:
    """The state copied out of the record (what a transition checks) is changed alone."""
    position, _, _ = _row(store, seq)
    set_event(store, position, state="approved sha256:forged")


def _row(store: Store, seq: int) -> tuple[int, str, str | None]:
    position = links(store)[seq - 1].position
    return next(row for row in log_rows(store) if row[0] == position)


Tamper = Callable[[Store, int], None]


@pytest.mark.parametrize(
    ("tamper_with", "reason", "found_at"),
    [
        (change, "altered", 0),
        (change_and_relink, "altered", 1),
        (reformat, "altered", 0),
        (delete, "deleted", 0),
        (reorder, "altered", 0),
        (flip_state, "stored state disagrees", 0),
    ],
    ids=["change", "change-and-relink", "reformat", "delete", "reorder", "state-column"],
)
@pytest.mark.parametrize("seq", [1, 3, 6])
async def test_tampering_is_found_at_the_first_bad_event(
    service: ApprovalService,
    store: Store,
    clock: ManualClock,
    tamper_with: Tamper,
    reason: str,
    found_at: int,
    seq: int,
) -> None:
    await _history(service, clock)
    await _sealed(service)
    assert (await service.verify_audit(ADMIN)).ok
    tamper_with(store, seq)
    result = await service.verify_audit(ADMIN)
    assert not result.ok
    assert result.first_bad is not None
    assert result.first_bad["seq"] == seq + found_at
    assert reason in result.first_bad["reason"]


async def test_a_history_rewritten_with_recomputed_hashes_is_found(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    """Every link recomputed after a forged event: the chain is whole again, but no longer
    the one the server signed, and the rewriter cannot sign without the server's key."""
    await _history(service, clock)
    await _sealed(service)
    position, record, _ = _row(store, 2)
    set_event(store, position, record=_forged(record, reason="forged"))
    rows = {p: r for p, r, _ in log_rows(store)}
    chain, prev, relinked = links(store), GENESIS, []
    for link in chain:
        prev = link_hash(prev, link.seq, link.position, rows[link.position])
        relinked.append(link.__class__(link.seq, link.position, prev))
    replace_links(store, relinked)
    result = await service.verify_audit(ADMIN)
    assert not result.ok and result.first_bad is not None
    assert "rewritten" in result.first_bad["reason"]


async def test_a_checkpoint_signed_by_another_key_is_refused(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    """The rewriter signs the rewritten head with a key of their own: it is not trusted."""
    await _history(service, clock)
    await _sealed(service)
    chain = links(store)
    delete_checkpoints_from(store, 1)
    forger = Keyring.ephemeral()
    last = chain[-1]
    forged = signed(
        Checkpoint(last.seq, last.hash, last.position, "2026-01-01", forger.current.kid),
        forger.sign,
    )
    add_checkpoint(store, forged)
    result = await service.verify_audit(ADMIN)
    assert not result.ok and result.first_bad is not None
    assert "untrusted key" in result.first_bad["reason"]


async def test_a_cut_off_tail_is_found_against_the_newest_checkpoint(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    await _history(service, clock)
    await _sealed(service)
    chain = links(store)
    for link in chain[-3:]:
        delete_event(store, link.position)
    delete_links_from(store, chain[-3].seq)
    result = await service.verify_audit(ADMIN)
    assert not result.ok and result.first_bad is not None
    assert "cut off" in result.first_bad["reason"]


async def test_a_cut_off_tail_with_its_checkpoints_is_found_against_an_exported_one(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    """The documented limit inside one database: cut the tail and every checkpoint over it,
    and only a checkpoint kept elsewhere shows what is gone."""
    await _history(service, clock)
    await _sealed(service)
    for _ in range(3):
        # events with no request row (which would show the cut as rows without events)
        await store.append_audit(AuditEntry("access.refused", None, {"sub": "x"}, service.now()))
    await _sealed(service)  # a second checkpoint, over the three newest events
    exported = await service.audit_log.latest_checkpoint()
    assert exported is not None
    chain = links(store)
    for link in chain[-3:]:
        delete_event(store, link.position)
    delete_links_from(store, chain[-3].seq)
    delete_checkpoints_from(store, chain[-3].seq)
    assert (await service.verify_audit(ADMIN)).ok
    result = await service.verify_audit(ADMIN, against=exported)
    assert not result.ok and result.first_bad is not None
    assert "cut off" in result.first_bad["reason"]


async def test_an_event_inserted_below_the_sealed_history_is_found(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    await _history(service, clock)
    await _sealed(service)
    wedge = links(store)[0].position - 1
    body: dict[str, object] = {"type": "access.refused", "request_id": None, "actor": {}}
    body |= {"at": "x", "via": None}
    insert_event(store, wedge, canonical_json({**body, "data": {}}), None)
    result = await service.verify_audit(ADMIN)
    assert not result.ok and result.first_bad is not None
    assert "inserted" in result.first_bad["reason"]


async def test_links_with_no_checkpoint_over_them_are_found(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    await _history(service, clock)
    await _sealed(service)
    delete_checkpoints_from(store, 1)
    result = await service.verify_audit(ADMIN)
    assert not result.ok and result.first_bad is not None
    assert "no signed checkpoint" in result.first_bad["reason"]


async def test_a_log_whose_seals_were_all_removed_is_found(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    await _history(service, clock)
    await _sealed(service)
    delete_checkpoints_from(store, 1)
    delete_links_from(store, 1)
    clock.advance(11 * 60)
    result = await service.verify_audit(ADMIN)
    assert not result.ok and result.first_bad is not None
    assert "never sealed" in result.first_bad["reason"]


# -- the rows against their events ---------------------------------------------------------


async def test_a_request_row_flipped_to_approved_is_reported_and_never_consumed(
    service: ApprovalService, store: Store
) -> None:
    """The attack of issue 10: a rejected request flipped to approved in the requests table.
    ``audit verify`` names it, and the agent's claim fails closed (the tool never runs)."""
    request = (await service.submit(refund_spec(), AGENT)).request
    rejected = await service.decide(request.id, ADMIN, "reject", reason="no")
    await tamper(store, rejected.model_copy(update={"status": Status.APPROVED}))
    result = await service.verify_audit(ADMIN)
    assert not result.ok
    assert result.mismatched == 1
    assert result.mismatches[0]["request_id"] == request.id
    assert result.mismatches[0]["events"] == "rejected"
    fresh = ApprovalService(await reopen(store), sweep=False)
    await fresh.start()
    try:
        with pytest.raises(StateMismatch):
            await fresh.consume(request.id, AGENT)
        types = [e.type for e in await fresh.audit_events(ADMIN, request_id=request.id)]
        assert "request.consumed" not in types and types[-1] == "integrity.mismatch"
    finally:
        if fresh.store is not store:
            await fresh.aclose()


# -- the database refuses changes itself ---------------------------------------------------


async def test_sqlite_refuses_to_change_or_delete_the_log(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "a.db"
    async with ApprovalService(SqliteStore(path), clock=clock) as service:
        await service.submit(refund_spec(), AGENT)
        await service.audit_log.seal()
    conn = sqlite3.connect(path, isolation_level=None)
    for table in ("audit_events", "audit_chain", "audit_checkpoints"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(f"UPDATE {table} SET position = position")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(f"DELETE FROM {table}")


async def test_postgres_refuses_to_change_or_delete_the_log(
    postgres_url: str, clock: ManualClock
) -> None:
    async with ApprovalService(
        PostgresStore.from_url(postgres_url, min_size=1), clock=clock
    ) as service:
        await service.submit(refund_spec(), AGENT)
        await _sealed(service)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("audit_events", "audit_chain", "audit_checkpoints"):
            for statement in (
                f"UPDATE {table} SET position = position",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
            ):
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                    conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (1,)
