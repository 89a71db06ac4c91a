"""The outbox in each store: written in the transition's own transaction, claimed in order
per request and channel, leased, and recorded only by the lease's holder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from signoff.config import parse_config
from signoff.connect import connect
from signoff.errors import SignoffError
from signoff.service import ApprovalService
from signoff.stores.base import Change
from signoff.stores.outbox import DeliveryQuery, DeliveryStatus, NewDelivery
from tests.conftest import AGENT, PUBLISHER, refund_spec

CONFIG = {
    "channels": {
        "a": {"type": "webhook", "url": "http://127.0.0.1:9/a", "secret": "whsec_" + "A" * 32},
        "b": {"type": "webhook", "url": "http://127.0.0.1:9/b", "secret": "whsec_" + "B" * 32},
    },
    "routes": [{"when": "true", "notify": ["a", "b"]}],
}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApprovalService]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    backends = connect(url)
    svc = ApprovalService(
        backends.store, backends.bus, config=parse_config(CONFIG, environ={}), sweep=False
    )
    await svc.start()
    yield svc
    await svc.aclose()


async def test_each_event_is_written_with_its_deliveries(service: ApprovalService) -> None:
    created = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(created.id, PUBLISHER, "approve")
    found = await service.store.list_deliveries(DeliveryQuery(request_id=created.id))
    assert sorted((d.channel, d.type) for d in found) == [
        ("a", "approval_decided"),
        ("a", "approval_request"),
        ("b", "approval_decided"),
        ("b", "approval_request"),
    ]
    assert all(d.status is DeliveryStatus.PENDING and d.attempts == 0 for d in found)


async def test_a_failed_transition_leaves_no_delivery(service: ApprovalService) -> None:
    """A delivery that cannot be written (its id is taken) fails the whole transaction: no
    new state, no audit event, no other delivery."""
    created = (await service.submit(refund_spec(), AGENT)).request
    store = service.store
    [taken, *_] = await store.list_deliveries(DeliveryQuery(request_id=created.id))
    events_before = await store.audit_events(request_id=created.id)

    def clash(req: object) -> Change:
        from signoff import lifecycle
        from signoff.decisions import DecisionInput
        from signoff.models import DecisionKind

        change = lifecycle.decide(
            created, DecisionInput(PUBLISHER, DecisionKind.APPROVE), service.roles, service.now()
        )
        fresh = NewDelivery("dlv_fresh", created.id, "a", "approval_decided", service.now())
        dupe = NewDelivery(taken.id, created.id, "b", "approval_decided", service.now())
        change.deliveries = [fresh, dupe]
        return change

    with pytest.raises((SignoffError, ValueError)):
        await store.transition(created.id, clash)
    after = await store.get(created.id)
    assert after is not None and after.status.value == "pending"
    assert await store.audit_events(request_id=created.id) == events_before
    assert await store.get_delivery("dlv_fresh") is None
    assert len(await store.list_deliveries(DeliveryQuery(request_id=created.id))) == 2


async def test_claims_go_in_order_per_request_and_channel(service: ApprovalService) -> None:
    store, now = service.store, service.now()
    created = (await service.submit(refund_spec(), AGENT)).request
    await service.decide(created.id, PUBLISHER, "approve")
    later = now + timedelta(seconds=5)
    first = await store.claim_deliveries("w1", later, later + timedelta(seconds=30), 10)
    # one per channel: the decisions wait behind their requests
    assert sorted((d.channel, d.type) for d in first) == [
        ("a", "approval_request"),
        ("b", "approval_request"),
    ]
    assert await store.claim_deliveries("w2", later, later + timedelta(seconds=30), 10) == []
    a_request = next(d for d in first if d.channel == "a")
    assert await store.finish_delivery(a_request.id, "w1", later, {"ts": "1"})
    second = await store.claim_deliveries("w2", later, later + timedelta(seconds=30), 10)
    assert [(d.channel, d.type) for d in second] == [("a", "approval_decided")]
    assert await store.receipts(created.id, "a", second[0].seq) == [{"ts": "1"}]


async def test_a_lease_that_runs_out_is_taken_over(service: ApprovalService) -> None:
    store = service.store
    created = (await service.submit(refund_spec(), AGENT)).request
    now = service.now() + timedelta(seconds=1)
    claimed = await store.claim_deliveries("dead", now, now + timedelta(seconds=2), 1)
    assert len(claimed) == 1
    later = now + timedelta(seconds=3)
    again = await store.claim_deliveries("alive", later, later + timedelta(seconds=30), 10)
    taken = next(d for d in again if d.id == claimed[0].id)
    assert taken.attempts == 2
    # the replica that lost its lease records nothing; the one holding it does
    assert not await store.finish_delivery(taken.id, "dead", later, None)
    assert await store.finish_delivery(taken.id, "alive", later, None)
    done = await store.get_delivery(taken.id)
    assert done is not None and done.status is DeliveryStatus.DELIVERED
    assert created.id == done.request_id


async def test_failures_retry_then_give_up_and_retry_on_demand(service: ApprovalService) -> None:
    store = service.store
    await service.submit(refund_spec(), AGENT)
    now = service.now() + timedelta(seconds=1)
    [first, *_] = await store.claim_deliveries("w", now, now + timedelta(seconds=30), 1)
    assert await store.fail_delivery(
        first.id, "w", "the receiver answered 500", now + timedelta(seconds=60)
    )
    waiting = await store.get_delivery(first.id)
    assert waiting is not None and waiting.status is DeliveryStatus.PENDING
    assert waiting.last_error == "the receiver answered 500"
    later = now + timedelta(seconds=61)
    [again] = [d for d in await store.claim_deliveries("w", later, later, 10) if d.id == first.id]
    assert await store.fail_delivery(again.id, "w", "gone", None)
    failed = await store.get_delivery(first.id)
    assert failed is not None and failed.status is DeliveryStatus.FAILED
    counts = await store.delivery_counts()
    assert counts[(first.channel, "failed")] == 1
    retried = await store.retry_delivery(first.id, later)
    assert retried is not None and retried.status is DeliveryStatus.PENDING
    assert retried.attempts == 0
    assert await store.retry_delivery("dlv_nope", later) is None


async def test_replicas_claiming_at_once_take_each_delivery_once(
    service: ApprovalService,
) -> None:
    for n in range(20):
        await service.submit(refund_spec(tool_call_id=f"c{n}"), AGENT)
    now = service.now() + timedelta(seconds=1)
    batches = await asyncio.gather(
        *(
            service.store.claim_deliveries(f"w{k}", now, now + timedelta(seconds=30), 7)
            for k in range(8)
        )
    )
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_a_claim_leaves_resting_channels_alone_and_can_take_one_channel_only(
    service: ApprovalService,
) -> None:
    """What the worker's circuit breaker asks of the store: skip the channels that rest,
    and claim a single probe from one of them."""
    for n in range(3):
        await service.submit(refund_spec(tool_call_id=f"rest-{n}"), AGENT)
    now = service.now() + timedelta(seconds=1)
    until = now + timedelta(seconds=60)
    without_a = await service.store.claim_deliveries("w", now, until, 10, skip=["a"])
    assert [d.channel for d in without_a] == ["b"] * 3
    probe = await service.store.claim_deliveries("w", now, until, 1, only="a")
    assert [d.channel for d in probe] == ["a"] and probe[0].attempts == 1
    rest = await service.store.claim_deliveries("w", now, until, 10, skip=["a"])
    assert rest == []  # the other two of "a" were left for when it is up again
    untouched = await service.store.list_deliveries(DeliveryQuery(channel="a"))
    assert sorted(d.attempts for d in untouched) == [0, 0, 1]
