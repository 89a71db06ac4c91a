"""The store contract for session-aware limits (signoff.history), on every store: the
ledger of unasked runs, and which requests count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from signoff.models import ApprovalRequest, Run, Status
from signoff.stores.base import Change, Store
from signoff.stores.history_store import Execution
from tests.stores.test_contract import NOW, approved, create, entry, make_request


def ran(
    n: int, *, agent: str = "support", run_id: str | None = "r1", ago_s: float = 0
) -> Execution:
    return Execution(
        id=f"ex_{n:04d}",
        tool="issue_refund",
        agent_id=agent,
        run_id=run_id,
        args={"order_id": f"ORD-{n}", "amount": n * 10},
        at=NOW - timedelta(seconds=ago_s),
    )


def ended(status: Status) -> Callable[[ApprovalRequest], Change]:
    def apply(current: ApprovalRequest) -> Change:
        new = current.model_copy(update={"status": status, "decided_at": NOW})
        return Change(new, [entry(f"request.{status.value}", current.id)])

    return apply


async def test_the_ledger_reads_back_the_agents_runs_in_the_window(store: Store) -> None:
    await store.record_execution(ran(1))
    await store.record_execution(ran(2, run_id=None))
    await store.record_execution(ran(3, ago_s=7200))  # before the window
    await store.record_execution(ran(4, agent="other"))
    rows = await store.history("support", NOW - timedelta(hours=1))
    got = sorted((r.run_id, r.args["amount"], r.in_flight) for r in rows if r.run_id)
    assert got == [("r1", 10, False)]
    assert sorted(r.args["order_id"] for r in rows) == ["ORD-1", "ORD-2"]
    assert all(r.tool == "issue_refund" and r.at.tzinfo is not None for r in rows)
    assert {r.at for r in rows} == {NOW}
    assert len(await store.history("support", NOW - timedelta(hours=3))) == 3


async def test_the_whole_ledger_reads_back_every_agents_runs_oldest_first(store: Store) -> None:
    await store.record_execution(ran(1, ago_s=60))
    await store.record_execution(ran(2, agent="other", ago_s=120))
    await store.record_execution(ran(3, ago_s=7200))  # before the start
    await store.record_execution(ran(4, run_id=None))
    found = await store.ledger(NOW - timedelta(hours=1))
    assert [e.id for e in found] == ["ex_0002", "ex_0001", "ex_0004"]
    assert found[0] == ran(2, agent="other", ago_s=120)  # every field as written
    assert found[2].run_id is None and found[2].at.tzinfo is not None
    assert len(await store.ledger(NOW - timedelta(hours=3))) == 4
    assert await store.ledger(NOW + timedelta(seconds=1)) == []


async def test_requests_count_while_they_may_run_and_never_once_they_cannot(
    store: Store,
) -> None:
    pending = await create(store, make_request(1))
    used = await create(store, make_request(2))
    await store.transition(used.id, approved)
    await store.transition(
        used.id,
        lambda cur: Change(
            cur.model_copy(update={"consumed_at": NOW}), [entry("request.consumed", cur.id)]
        ),
    )
    unused = await create(store, make_request(3))
    await store.transition(unused.id, approved)
    for n, status in ((4, Status.REJECTED), (5, Status.EXPIRED), (6, Status.CANCELLED)):
        req = await create(store, make_request(n))
        await store.transition(req.id, ended(status))
    await create(store, make_request(7, agent="other"))

    rows = await store.history("support", NOW - timedelta(hours=1))
    by_amount = {r.args["amount"]: r for r in rows}
    assert sorted(by_amount) == [1, 2, 3]
    assert by_amount[1].in_flight and by_amount[3].in_flight
    assert not by_amount[2].in_flight
    assert by_amount[1].run_id == "r1" and by_amount[1].at == NOW
    assert pending.id  # the pending one counts whatever its age:
    later = await store.history("support", NOW + timedelta(days=2))
    assert [r.args["amount"] for r in later] == [1]


async def test_sums_read_the_approved_arguments(store: Store) -> None:
    req = await create(store, make_request(9))

    def edit_and_approve(current: ApprovalRequest) -> Change:
        change = approved(current)
        assert change.request is not None
        change.request = change.request.model_copy(
            update={"final_args": {"order_id": "ORD-9", "amount": 5}}
        )
        return change

    await store.transition(req.id, edit_and_approve)
    (row,) = await store.history("support", NOW - timedelta(hours=1))
    assert row.args == {"order_id": "ORD-9", "amount": 5}


async def test_a_run_id_in_another_agents_run_is_not_this_agents(store: Store) -> None:
    other = make_request(1, agent="other").model_copy(
        update={"run": Run(agent_id="other", run_id="r1")}
    )
    await create(store, other)
    assert await store.history("support", NOW - timedelta(hours=1)) == []
