"""One contract for every store, run on each of conftest.STORE_KINDS: memory, SQLite, Postgres."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signoff.audit import GENESIS, AuditEntry
from signoff.canonical import digest
from signoff.errors import Conflict, InvalidArguments, NotFound, StateMismatch, StoreError
from signoff.keys import Keyring
from signoff.models import ApprovalRequest, Page, PolicySnapshot, Run, RunRecord, Status
from signoff.sealer import seal_once
from signoff.stores.base import Change, ListQuery, RunQuery, Store
from tests.conftest import drop_store, make_store
from tests.helpers.tamper import reopen, tamper

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_request(
    n: int,
    *,
    key: str | None = None,
    tool: str = "issue_refund",
    agent: str = "support",
    risk: str = "medium",
    expires_in: float = 300,
) -> ApprovalRequest:
    args = {"order_id": f"ORD-{n}", "amount": n}
    return ApprovalRequest(
        id=f"apr_{n:04d}",
        status=Status.PENDING,
        tool=tool,
        args=args,
        final_args=args,
        run=Run(agent_id=agent, run_id="r1"),
        requested_by=agent,
        risk=risk,
        policy=PolicySnapshot(min_role="publisher", timeout_s=expires_in),
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=expires_in),
        args_digest=digest(args),
        idempotency_key=key,
    )


def entry(type_: str, request_id: str | None, **data: object) -> AuditEntry:
    return AuditEntry(
        type_, request_id, {"sub": "test", "kind": "agent", "role": None}, NOW, None, dict(data)
    )


def created_entry(req: ApprovalRequest) -> AuditEntry:
    return entry("request.created", req.id, args_digest=req.args_digest)


def approved(current: ApprovalRequest) -> Change:
    new = current.model_copy(update={"status": Status.APPROVED, "decided_at": NOW})
    return Change(new, [entry("request.approved", current.id, args_digest=current.args_digest)])


async def create(store: Store, req: ApprovalRequest) -> ApprovalRequest:
    created = await store.create(req, created_entry(req))
    return created.request


async def test_create_and_get_round_trip(store: Store) -> None:
    req = make_request(1)
    created = await store.create(req, created_entry(req))
    assert created.created
    assert created.request == req
    assert [e.type for e in created.events] == ["request.created"]
    assert await store.get(req.id) == req
    assert await store.get("apr_missing") is None


async def test_create_is_idempotent_on_key(store: Store) -> None:
    first = make_request(1, key="agent\x1fr1/toolu_1")
    second = make_request(2, key="agent\x1fr1/toolu_1")
    await create(store, first)
    again = await store.create(second, created_entry(second))
    assert not again.created
    assert again.request.id == first.id
    assert again.events == []
    assert await store.get(second.id) is None
    # the duplicate wrote nothing: one request, one audit event (which is its live event)
    assert len(await store.audit_events()) == 1
    assert len(await store.events_after(0)) == 1


async def test_list_is_newest_first_with_cursor(store: Store) -> None:
    for n in range(1, 8):
        await create(store, make_request(n))
    page = await store.list_requests(ListQuery(limit=3))
    assert [r.id for r in page.items] == ["apr_0007", "apr_0006", "apr_0005"]
    assert page.next_cursor is not None
    page2 = await store.list_requests(ListQuery(limit=3, cursor=page.next_cursor))
    assert [r.id for r in page2.items] == ["apr_0004", "apr_0003", "apr_0002"]
    assert page2.next_cursor is not None
    page3 = await store.list_requests(ListQuery(limit=3, cursor=page2.next_cursor))
    assert [r.id for r in page3.items] == ["apr_0001"]
    assert page3.next_cursor is None


async def test_list_filters(store: Store) -> None:
    await create(store, make_request(1, tool="a", agent="x", risk="high"))
    await create(store, make_request(2, tool="b", agent="x"))
    await create(store, make_request(3, tool="a", agent="y"))

    def ids(page: Page) -> list[str]:
        return [r.id for r in page.items]

    assert ids(await store.list_requests(ListQuery(tool="a"))) == ["apr_0003", "apr_0001"]
    assert ids(await store.list_requests(ListQuery(agent_id="x"))) == ["apr_0002", "apr_0001"]
    assert ids(await store.list_requests(ListQuery(risk="high"))) == ["apr_0001"]
    assert ids(await store.list_requests(ListQuery(requested_by="y"))) == ["apr_0003"]
    assert ids(await store.list_requests(ListQuery(status="approved"))) == []
    assert ids(await store.list_requests(ListQuery(tool="a", agent_id="y"))) == ["apr_0003"]


async def test_bad_cursor_is_a_clear_error(store: Store) -> None:
    with pytest.raises(InvalidArguments, match="invalid cursor"):
        await store.list_requests(ListQuery(cursor="not-a-cursor!"))


async def test_transition_writes_state_audit_and_events_together(store: Store) -> None:
    req = await create(store, make_request(1))
    result = await store.transition(req.id, approved)
    assert result.request.status is Status.APPROVED
    assert [e.type for e in result.events] == ["request.decided"]
    assert result.events[0].request["status"] == "approved"
    assert (await store.get(req.id)).status is Status.APPROVED  # type: ignore[union-attr]
    audit = await store.audit_events()
    assert [e.type for e in audit] == ["request.created", "request.approved"]
    live = await store.events_after(0)
    assert [e.type for e in live] == ["request.created", "request.decided"]
    # a live event is its audit event: one log, one position
    assert [e.id for e in live] == [e.position for e in audit]
    assert live[1].id == result.events[0].id


async def test_transition_refusal_is_audited_and_changes_nothing(store: Store) -> None:
    req = await create(store, make_request(1))

    def refuse(current: ApprovalRequest) -> Change:
        return Change(audit=[entry("decision.refused", current.id)], error=Conflict("no"))

    with pytest.raises(Conflict):
        await store.transition(req.id, refuse)
    assert await store.get(req.id) == req
    assert [e.type for e in await store.audit_events()] == ["request.created", "decision.refused"]
    # a refusal is audited, never streamed
    assert [e.type for e in await store.events_after(0)] == ["request.created"]


async def test_transition_rolls_back_when_the_function_raises(store: Store) -> None:
    req = await create(store, make_request(1))

    def boom(current: ApprovalRequest) -> Change:
        raise RuntimeError("bug in a transition")

    with pytest.raises(RuntimeError):
        await store.transition(req.id, boom)
    assert await store.get(req.id) == req
    assert len(await store.audit_events()) == 1


async def test_a_change_without_an_audit_event_is_refused(store: Store) -> None:
    """Invariant 7: the store will not write a state change that is not audited."""
    req = await create(store, make_request(1))

    def unaudited(current: ApprovalRequest) -> Change:
        return Change(current.model_copy(update={"status": Status.APPROVED}))

    with pytest.raises(StoreError, match="no audit event"):
        await store.transition(req.id, unaudited)
    assert (await store.get(req.id)).status is Status.PENDING  # type: ignore[union-attr]


async def test_transition_of_unknown_request(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.transition("apr_missing", lambda r: Change())


async def test_transition_is_compare_and_set(store: Store) -> None:
    """Many transitions racing on one request: each one that commits saw the state the last
    one wrote (a change computed from a state that moved on is computed again)."""
    req = await create(store, make_request(1))

    def decide_once(current: ApprovalRequest) -> Change:
        if current.status is not Status.PENDING:
            return Change(audit=[entry("decision.refused", current.id)], error=Conflict("late"))
        return approved(current)

    async def attempt() -> bool:
        try:
            await store.transition(req.id, decide_once)
        except Conflict:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    assert sum(results) == 1
    types = [e.type for e in await store.audit_events()]
    assert types.count("request.approved") == 1
    assert types.count("decision.refused") == 49


async def test_a_row_changed_outside_signoff_is_not_transitioned(
    store: Store, tmp_path: Path
) -> None:
    """State bound to the log: a rejected request flipped to approved in its row is never
    moved on (consumed, reported); the store fails closed and writes nothing."""
    req = await create(store, make_request(1))

    def reject(current: ApprovalRequest) -> Change:
        new = current.model_copy(update={"status": Status.REJECTED, "decided_at": NOW})
        return Change(new, [entry("request.rejected", current.id)])

    await store.transition(req.id, reject)
    flipped = (await store.get(req.id)).model_copy(update={"status": Status.APPROVED})  # type: ignore[union-attr]
    await tamper(store, flipped)
    fresh = await reopen(store)

    def consume(current: ApprovalRequest) -> Change:
        assert current.status is Status.APPROVED  # what the row now claims
        new = current.model_copy(update={"consumed_at": NOW})
        return Change(new, [entry("request.consumed", current.id, args_digest=current.args_digest)])

    try:
        with pytest.raises(StateMismatch, match="changed outside signoff"):
            await fresh.transition(req.id, consume)
        types = [e.type for e in await fresh.audit_events()]
        assert types == ["request.created", "request.rejected"]
        assert (await fresh.get(req.id)).consumed_at is None  # type: ignore[union-attr]
    finally:
        if fresh is not store:
            await fresh.aclose()


async def test_a_stale_version_is_recomputed_not_overwritten(
    store_kind: str, tmp_path: Path
) -> None:
    """Two processes on one database: the second starts from the version it cached, finds
    the row moved on, and computes its change again on the row as it is."""
    if store_kind == "memory":
        return  # one process only: there is no second cache to go stale
    first = make_store(store_kind, tmp_path)
    await first.start()
    second = await reopen(first)
    try:
        req = await create(first, make_request(1))
        await second.get(req.id)  # second caches version 1
        await first.transition(req.id, approved)
        seen: list[Status] = []

        def consume(current: ApprovalRequest) -> Change:
            seen.append(current.status)
            if current.status is not Status.APPROVED:
                return Change(audit=[entry("action.refused", current.id)], error=Conflict("no"))
            new = current.model_copy(update={"consumed_at": NOW})
            return Change(
                new, [entry("request.consumed", current.id, args_digest=current.args_digest)]
            )

        result = await second.transition(req.id, consume)
        assert seen == [Status.PENDING, Status.APPROVED]
        assert result.request.consumed_at is not None
        types = [e.type for e in await first.audit_events()]
        assert types == ["request.created", "request.approved", "request.consumed"]
    finally:
        await second.aclose()
        await first.aclose()
        drop_store(first)


async def test_expiry_queries(store: Store) -> None:
    await create(store, make_request(1, expires_in=10))
    await create(store, make_request(2, expires_in=5))
    await create(store, make_request(3, expires_in=100))
    assert await store.next_expiry() == NOW + timedelta(seconds=5)
    assert await store.due_for_expiry(NOW + timedelta(seconds=4)) == []
    assert await store.due_for_expiry(NOW + timedelta(seconds=10)) == ["apr_0002", "apr_0001"]
    assert await store.due_for_expiry(NOW + timedelta(seconds=10), limit=1) == ["apr_0002"]


async def test_decided_requests_are_not_due_for_expiry(store: Store) -> None:
    req = await create(store, make_request(1, expires_in=5))
    await store.transition(req.id, approved)
    assert await store.due_for_expiry(NOW + timedelta(days=1)) == []
    assert await store.next_expiry() is None


async def test_events_after_pages_in_order_and_say_what_lies_before(store: Store) -> None:
    start = await store.last_event_id()
    ids = [
        (await store.create(r, created_entry(r))).events[0].id
        for r in map(make_request, range(1, 6))
    ]
    assert ids == sorted(ids) and len(set(ids)) == 5
    events = await store.events_after(ids[1], limit=2)
    assert [e.id for e in events] == ids[2:4]
    assert events[0].request["id"] == "apr_0003"
    # each event read back names the one before it: nothing live lies between
    assert [e.prev for e in events] == [ids[1], ids[2]]
    assert await store.last_event_id() >= ids[-1] > start
    assert await store.events_after(ids[-1]) == []


async def test_audit_log_is_ordered_and_filterable(store: Store) -> None:
    for n in range(1, 4):
        await create(store, make_request(n))
    await store.append_audit(entry("access.refused", "apr_0002", attempted="read"))
    events = await store.audit_events()
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert all(not e.sealed for e in events)
    only = await store.audit_events(request_id="apr_0002")
    assert [e.type for e in only] == ["request.created", "access.refused"]
    assert [e.position for e in await store.audit_events(after=positions[1], limit=1)] == [
        positions[2]
    ]


async def test_sealing_links_every_event_once_under_a_signed_checkpoint(store: Store) -> None:
    keys = Keyring.ephemeral()
    for n in range(1, 4):
        await create(store, make_request(n))
    await store.settle()
    results = await asyncio.gather(*(seal_once(store, keys, NOW) for _ in range(5)))
    assert sum(results) == 3  # racing sealers: each event sealed exactly once
    await create(store, make_request(4))
    await store.settle()
    assert await seal_once(store, keys, NOW) == 1
    events = await store.audit_events()
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    checkpoints = await store.checkpoints()
    assert checkpoints[-1].size == 4 and checkpoints[-1].head == events[-1].hash
    head = await store.chain_head()
    assert head is not None and head.seq == 4
    assert await store.unsealed(head.position, 10) == []
    assert await store.unsealed_below(head.position) == []
    rows = await store.sealed(2, 10)
    assert [r.seq for r in rows] == [3, 4] and rows[0].record == events[2].record
    # nothing to seal: no new checkpoint
    assert await seal_once(store, keys, NOW) == 0
    assert len(await store.checkpoints()) == len(checkpoints)


async def test_requests_page_reads_every_request(store: Store) -> None:
    for n in range(1, 4):
        await create(store, make_request(n))
    page = await store.requests_page(0, 2)
    assert [r.id for _, r, _ in page if r is not None] == ["apr_0001", "apr_0002"]
    rest = await store.requests_page(page[-1][0], 10)
    assert [r.id for _, r, _ in rest if r is not None] == ["apr_0003"]


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_count_by_status(store: Store) -> None:
    assert await store.count_by_status() == {}
    await create(store, make_request(1))
    req = await create(store, make_request(2))
    await store.transition(req.id, approved)
    assert await store.count_by_status() == {"pending": 1, "approved": 1}


# -- durable runs ----------------------------------------------------------------------------


def run_record(
    run_id: str, owner: str = "bot", minutes: int = 0, status: str = "running"
) -> RunRecord:
    at = NOW + timedelta(minutes=minutes)
    return RunRecord(
        run_id=run_id,
        owner=owner,
        agent_id=owner,
        status=status,
        provider="anthropic",
        model="m",
        transcript=[{"role": "user", "content": "hi"}],
        created_at=at,
        updated_at=at,
    )


async def test_runs_save_get_list(store: Store) -> None:
    assert await store.get_run("bot", "r1") is None
    await store.save_run(run_record("r1", minutes=1))
    await store.save_run(run_record("r2", minutes=2, status="finished"))
    first = await store.get_run("bot", "r1")
    assert first is not None and first.transcript == [{"role": "user", "content": "hi"}]
    updated = run_record("r1", minutes=3).model_copy(update={"transcript": [], "turns": 2})
    await store.save_run(updated)
    again = await store.get_run("bot", "r1")
    assert again is not None and again.turns == 2 and again.transcript == []
    assert [r.run_id for r in await store.list_runs(RunQuery())] == ["r1", "r2"]
    assert [r.run_id for r in await store.list_runs(RunQuery(status="finished"))] == ["r2"]
    assert [r.run_id for r in await store.list_runs(RunQuery(limit=1))] == ["r1"]


async def test_a_run_id_belongs_to_its_agent(store: Store) -> None:
    """One agent using (or squatting on) a run id never touches another agent's run."""
    await store.save_run(run_record("r1", owner="bot-a"))
    await store.save_run(run_record("r1", owner="bot-b", minutes=5))
    mine = await store.get_run("bot-a", "r1")
    theirs = await store.get_run("bot-b", "r1")
    assert mine is not None and mine.owner == "bot-a"
    assert theirs is not None and theirs.owner == "bot-b"
    both = await store.list_runs(RunQuery(run_id="r1"))
    assert sorted(r.owner for r in both) == ["bot-a", "bot-b"]
    assert [r.owner for r in await store.list_runs(RunQuery(owner="bot-a"))] == ["bot-a"]


# -- single-use tokens -----------------------------------------------------------------------


async def test_a_token_is_spent_once(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert not await store.is_spent("link:a")
    assert await store.spend("link:a", later)
    assert await store.is_spent("link:a")
    assert not await store.spend("link:a", later)
    assert not await store.is_spent("link:b")
    assert await store.spend("ticket:a", later)  # another kind of token, another key


async def test_a_spent_token_is_forgotten_once_it_can_no_longer_be_used(store: Store) -> None:
    now = datetime.now(UTC)
    assert await store.spend("ticket:old", now - timedelta(seconds=1))
    assert not await store.is_spent("ticket:old")
    # its row is purged, so the key (were the token still valid) could be recorded again
    assert await store.spend("ticket:old", now + timedelta(minutes=1))
    assert await store.is_spent("ticket:old")


async def test_racing_spends_of_one_token_let_exactly_one_through(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    results = await asyncio.gather(*(store.spend("link:race", later) for _ in range(50)))
    assert results.count(True) == 1
