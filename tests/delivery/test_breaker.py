"""A channel that keeps failing rests: its deliveries wait instead of being tried one by
one, a single probe goes out when the rest ends, and an answer closes it again."""

from __future__ import annotations

import time

from signoff.delivery.breaker import Breakers
from signoff.stores.outbox import DeliveryStatus
from tests.conftest import AGENT, refund_spec
from tests.delivery.world import world
from tests.helpers.channels import Received


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_three_failures_rest_a_channel_and_a_probe_goes_out_after_the_rest() -> None:
    clock = Clock()
    breakers = Breakers(lambda rests: 2.0**rests, clock=clock)
    for _ in range(2):
        breakers.failed("hook")
    assert breakers.skipped() == []  # two failures: still tried as usual
    breakers.failed("hook")
    assert breakers.skipped() == ["hook"] and breakers.due_probes() == []
    assert breakers.next_probe_in() == 2.0
    clock.now += 2.0
    assert breakers.due_probes() == ["hook"]
    breakers.probing("hook")
    assert breakers.due_probes() == [] and breakers.skipped() == ["hook"]
    breakers.failed("hook")  # the probe failed: a longer rest
    assert breakers.next_probe_in() == 4.0
    clock.now += 4.0
    breakers.probing("hook")
    breakers.answered("hook")  # the probe went through: closed
    assert breakers.skipped() == [] and breakers.next_probe_in() is None


def test_a_probe_that_told_nothing_lets_the_next_one_go() -> None:
    clock = Clock()
    breakers = Breakers(lambda rests: 1.0, clock=clock)
    for _ in range(3):
        breakers.failed("hook")
    clock.now += 1.0
    breakers.probing("hook")
    breakers.released("hook")  # its request was gone: no word on the channel's health
    assert breakers.due_probes() == ["hook"]


async def test_a_channel_that_is_down_is_probed_not_hammered_and_catches_up() -> None:
    # down until 1.2 s after the last submission (however long the submissions took)
    up_at = float("inf")
    tried_while_down = 0

    async def down_for_a_while(_: Received) -> tuple[int, dict[str, str]]:
        nonlocal tried_while_down
        if time.monotonic() < up_at:
            tried_while_down += 1
            return (503, {})
        return (204, {})

    async with world() as w:
        w.receiver.behaviour = down_for_a_while
        for n in range(20):
            await w.service.submit(refund_spec(tool_call_id=f"down-{n}"), AGENT)
        up_at = time.monotonic() + 1.2
        delivered = await w.settled(20, timeout=15)
    # without resting, 20 deliveries retried every 50-200 ms would be tried 6 times each
    # (120 sends) while the channel is down; resting, the first wave and one probe per rest
    assert 20 <= tried_while_down <= 40, tried_while_down
    assert all(d.status is DeliveryStatus.DELIVERED for d in delivered)
    assert len({d.id for d in delivered}) == 20
