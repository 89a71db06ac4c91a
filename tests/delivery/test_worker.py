"""The delivery worker against a real webhook receiver that verifies every signature with
the ``standardwebhooks`` reference library."""

from __future__ import annotations

import asyncio
import time

import httpx

from signoff.models import Status
from signoff.stores.outbox import DeliveryStatus
from tests.conftest import AGENT, PUBLISHER, refund_spec
from tests.delivery.world import world
from tests.helpers.channels import Received


async def test_events_arrive_in_order_and_verify() -> None:
    async with world() as w:
        created = (await w.service.submit(refund_spec(), AGENT)).request
        await w.service.decide(created.id, PUBLISHER, "approve")
        await w.service.consume(created.id, AGENT)
        await w.service.record_outcome(created.id, AGENT, "succeeded", {"ok": True})
        await w.settled(3)
        await w.receiver.wait_for(3)
        types = [e["type"] for e in w.events()]
        assert types == ["approval_request", "approval_decided", "tool_outcome"]
        assert {e["requestId"] for e in w.events()} == {created.id}
        done = await w.deliveries()
        assert all(d.status is DeliveryStatus.DELIVERED and d.attempts == 1 for d in done)


async def test_a_500_is_delivered_again_later_and_succeeds_once() -> None:
    answers = iter([500, 500])

    async def flaky(_: Received) -> tuple[int, dict[str, str]]:
        return next(answers, 204), {}

    async with world() as w:
        w.receiver.behaviour = flaky
        created = (await w.service.submit(refund_spec(), AGENT)).request
        [delivery] = await w.settled(1)
        assert delivery.status is DeliveryStatus.DELIVERED
        assert delivery.attempts == 3
        ids = [r.headers["webhook-id"] for r in w.receiver.received]
        assert ids == [delivery.id] * 3  # the same id each time: the receiver dedupes on it
        assert [e["requestId"] for e in w.events()] == [created.id] * 3
        delivered = await w.deliveries(status="delivered")
        assert [d.id for d in delivered] == [delivery.id]


async def test_a_receiver_that_times_out_gets_it_again() -> None:
    slow = {"first": True}

    async def dawdle(_: Received) -> tuple[int, dict[str, str]]:
        if slow.pop("first", False):
            await asyncio.sleep(1.5)
        return 204, {}

    async with world(timeout_s=0.3) as w:
        w.receiver.behaviour = dawdle
        await w.service.submit(refund_spec(), AGENT)
        [delivery] = await w.settled(1)
        assert delivery.status is DeliveryStatus.DELIVERED
        assert delivery.attempts == 2
        assert len(w.receiver.received) == 2


async def test_later_events_wait_for_earlier_ones_of_the_same_request() -> None:
    answers = iter([500, 500, 500])

    async def failing_first(_: Received) -> tuple[int, dict[str, str]]:
        return next(answers, 204), {}

    async with world() as w:
        w.receiver.behaviour = failing_first
        created = (await w.service.submit(refund_spec(), AGENT)).request
        await w.service.decide(created.id, PUBLISHER, "reject", reason="no")
        await w.settled(2)
        types = [e["type"] for e in w.events()]
        # the decision is never sent before the request it is about has been delivered
        assert types == ["approval_request"] * 4 + ["approval_decided"]


async def test_a_delivery_that_keeps_failing_is_kept_as_failed() -> None:
    async def down(_: Received) -> tuple[int, dict[str, str]]:
        return 503, {}

    async with world() as w:
        w.receiver.behaviour = down
        await w.service.submit(refund_spec(), AGENT)
        [delivery] = await w.settled(1)
        assert delivery.status is DeliveryStatus.FAILED
        assert delivery.attempts == w.runtime.worker.options.max_attempts
        assert "503" in (delivery.last_error or "")
        again = await w.service.store.retry_delivery(delivery.id, w.service.now())
        assert again is not None and again.status is DeliveryStatus.PENDING


async def test_a_410_is_failed_at_once() -> None:
    async def gone(_: Received) -> tuple[int, dict[str, str]]:
        return 410, {}

    async with world() as w:
        w.receiver.behaviour = gone
        await w.service.submit(refund_spec(), AGENT)
        [delivery] = await w.settled(1)
        assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 1


async def test_the_callback_approves_and_the_waiting_agent_resumes() -> None:
    async with world(principal=True) as w:

        async def approve(got: Received) -> tuple[int, dict[str, str]]:
            event = w.events()[-1]
            if event["type"] == "approval_request":

                async def post() -> None:
                    async with httpx.AsyncClient() as client:
                        answer = await client.post(event["callbackUrl"], json={"approved": True})
                        assert answer.status_code == 200, answer.text

                asyncio.get_running_loop().create_task(post())
            return 204, {}

        w.receiver.behaviour = approve
        created = (await w.service.submit(refund_spec(), AGENT)).request
        decided = await asyncio.wait_for(w.service.wait(created.id, AGENT, timeout=10), 10)
        assert decided.status is Status.APPROVED
        assert decided.decisions[0].by == "ops-bot" and decided.decisions[0].via == "webhook"


async def test_routes_pick_channels_by_risk() -> None:
    routes = [{"when": "risk in ['high', 'critical']", "notify": ["hook"]}]
    async with world(routes=routes) as w:
        await w.service.submit(refund_spec(risk="low", tool_call_id="low"), AGENT)
        high = (await w.service.submit(refund_spec(risk="high", tool_call_id="hi"), AGENT)).request
        [delivery] = await w.settled(1)
        assert delivery.request_id == high.id


async def test_an_escalation_fires_after_its_delay_and_not_before() -> None:
    routes = [
        {"when": "true", "notify": ["hook"], "escalate": [{"after": "1s", "notify": ["hook"]}]}
    ]
    async with world(routes=routes) as w:
        created = (await w.service.submit(refund_spec(), AGENT)).request
        started = time.monotonic()
        await w.receiver.wait_for(1)
        await asyncio.sleep(0.6)
        assert [e["type"] for e in w.events()] == ["approval_request"]
        await w.receiver.wait_for(2, timeout=5)
        assert time.monotonic() - started >= 0.9
        escalated = w.events()[1]
        assert escalated["type"] == "approval_escalated" and escalated["escalation"] == 1
        await asyncio.sleep(1.2)  # never repeated
        audited = [e.type for e in await w.service.store.audit_events(request_id=created.id)]
        assert audited.count("request.escalated") == 1
        assert len(w.receiver.received) == 2
        request = await w.service.store.get(created.id)
        assert request is not None and [e.step for e in request.escalations] == [1]


async def test_no_escalation_once_decided() -> None:
    routes = [
        {"when": "true", "notify": ["hook"], "escalate": [{"after": "0.5s", "notify": ["hook"]}]}
    ]
    async with world(routes=routes) as w:
        created = (await w.service.submit(refund_spec(), AGENT)).request
        await w.service.decide(created.id, PUBLISHER, "approve")
        await asyncio.sleep(1.2)
        audited = [e.type for e in await w.service.store.audit_events(request_id=created.id)]
        assert "request.escalated" not in audited


async def test_a_channel_that_is_down_does_not_slow_the_gate() -> None:
    async def hang(_: Received) -> tuple[int, dict[str, str]]:
        await asyncio.sleep(5)
        return 204, {}

    async with world(timeout_s=3) as w:
        w.receiver.behaviour = hang
        started = time.perf_counter()
        created = (await w.service.submit(refund_spec(), AGENT)).request
        await w.service.decide(created.id, PUBLISHER, "approve")
        assert time.perf_counter() - started < 0.5


async def test_a_cancel_that_lands_as_the_worker_is_woken_stops_it() -> None:
    # on Python 3.11, asyncio.wait_for returns normally when a cancel lands in the tick its
    # event was set: the loop, never told to stop, went on, and aclose waited for it forever
    async with world() as w:
        await asyncio.sleep(0.3)  # idle: waiting to be woken
        [loop] = [t for t in asyncio.all_tasks() if t.get_name() == "signoff-delivery-worker"]
        w.runtime.worker.wake()
        loop.cancel()
        await asyncio.sleep(0.2)
        assert loop.done()
