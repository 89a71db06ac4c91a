"""The bus remembers the newest event it heard per request, so a waiter that subscribes
right after its request was written begins without reading the store; a wake-up without an
event (another process changed the request in a way only the store knows) forgets it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from signoff.bus import base
from signoff.bus.memory import MemoryBus
from signoff.events import Event, EventType
from signoff.service import ApprovalService
from signoff.stores.sqlite import SqliteStore
from tests.bus.conftest import process
from tests.conftest import ADMIN, AGENT, refund_spec
from tests.stores.test_contract import make_request


def _event(position: int, request_id: str = "apr_0001") -> Event:
    request = make_request(1)
    return Event(position, EventType.CREATED, request_id, "now", request, position - 1)


def test_the_newest_event_per_request_is_kept_until_a_bare_wake_up() -> None:
    bus = MemoryBus()
    bus.deliver(_event(5))
    bus.deliver(_event(3))  # older, heard late: does not replace the newer
    assert (latest := bus.latest("apr_0001")) is not None and latest.id == 5
    bus.wake("apr_0001")
    assert bus.latest("apr_0001") is None
    bus.deliver(_event(9))
    bus.wake_all()
    assert bus.latest("apr_0001") is None


def test_only_so_many_requests_are_remembered(monkeypatch: object) -> None:
    bus = MemoryBus()
    for n in range(base._LATEST + 5):
        bus.deliver(_event(n + 1, f"apr_{n}"))
    assert bus.latest("apr_0") is None
    assert bus.latest(f"apr_{base._LATEST + 4}") is not None


async def test_a_wait_right_after_the_write_does_not_read_the_request(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    async with ApprovalService(store, sweep=False) as service:
        created = (await service.submit(refund_spec(), AGENT)).request
        reads = 0
        get = store.get

        async def counting(request_id: str) -> object:
            nonlocal reads
            reads += 1
            return await get(request_id)

        store.get = counting  # type: ignore[method-assign, assignment]
        waiting = asyncio.ensure_future(service.wait(created.id, AGENT, timeout=10))
        await asyncio.sleep(0.05)
        await service.decide(created.id, ADMIN, "approve")
        decided = await waiting
    assert decided.status.value == "approved"
    assert reads == 0


async def test_a_decision_made_elsewhere_first_is_still_seen(tmp_path: Path) -> None:
    """Another process decides between the write and the wait, while nobody here waits: the
    tail passes the decision by unread, so what this process heard (pending) is forgotten
    and the wait reads the store."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    async with process(url) as (here, _), process(url) as (there, _):
        created = (await here.submit(refund_spec(), AGENT)).request
        await there.decide(created.id, ADMIN, "reject", reason="not today")
        await asyncio.sleep(0.5)  # here's tail passes the decision by: nobody waits yet
        decided = await asyncio.wait_for(here.wait(created.id, AGENT, timeout=10), 5)
    assert decided.status.value == "rejected"
