"""The device methods' contract, on every store (memory, SQLite, PostgreSQL): each change
is a compare-and-set on the status, so two racers never both win."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from signoff.stores.base import Store
from signoff.stores.device_base import SLOW_DOWN_S, DeviceRecord

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def device(n: int, *, expires_in: float = 600) -> DeviceRecord:
    return DeviceRecord(
        id=f"dev_{n}",
        name=f"laptop {n}",
        address="127.0.0.1",
        status="pending",
        sub=None,
        role=None,
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=expires_in),
        interval_s=5,
        last_poll_at=None,
        failures=0,
        refresh_gen=0,
        decided_at=None,
        used_at=None,
    )


async def test_insert_lookup_and_a_user_code_waits_once(store: Store) -> None:
    assert await store.device_insert(device(1), "dc1", "uc1")
    assert not await store.device_insert(device(2), "dc2", "uc1")  # same user code waiting
    assert not await store.device_insert(device(3), "dc1", "uc3")  # same device code
    found = await store.device_by_user_code("uc1", NOW)
    assert found == device(1)
    assert await store.device_by_user_code("uc1", NOW + timedelta(seconds=601)) is None
    assert await store.device_by_user_code("nope", NOW) is None
    assert await store.device_get("dev_1") == device(1)
    assert await store.device_get("dev_404") is None


async def test_polling_too_fast_grows_the_interval(store: Store) -> None:
    await store.device_insert(device(1), "dc1", "uc1")
    first = await store.device_poll("dc1", NOW)
    assert first is not None and not first[1] and first[0].last_poll_at == NOW
    fast = await store.device_poll("dc1", NOW + timedelta(seconds=2))
    assert fast is not None and fast[1] and fast[0].interval_s == 5 + SLOW_DOWN_S
    slow = await store.device_poll("dc1", NOW + timedelta(seconds=13))
    assert slow is not None and not slow[1] and slow[0].interval_s == 5 + SLOW_DOWN_S
    assert await store.device_poll("unknown", NOW) is None


async def test_decide_activate_rotate_revoke(store: Store) -> None:
    await store.device_insert(device(1), "dc1", "uc1")
    later = NOW + timedelta(seconds=10)
    decided = await store.device_decide("dev_1", True, "paul", "publisher", later)
    assert decided is not None and (decided.status, decided.sub, decided.role) == (
        "approved",
        "paul",
        "publisher",
    )
    assert await store.device_decide("dev_1", False, "eve", "admin", later) is None
    assert await store.device_by_user_code("uc1", later) is None  # no longer waiting
    ends = NOW + timedelta(days=30)
    active = await store.device_activate("dev_1", later, ends)
    assert active is not None and active.status == "active" and active.refresh_gen == 1
    assert active.expires_at == ends
    assert await store.device_activate("dev_1", later, ends) is None  # once
    rotated = await store.device_rotate("dev_1", 1, later)
    assert rotated is not None and rotated.refresh_gen == 2
    assert await store.device_rotate("dev_1", 1, later) is None  # an old generation
    assert [d.id for d in await store.device_list("paul")] == ["dev_1"]
    assert await store.device_list("petra") == []
    revoked = await store.device_revoke("dev_1")
    assert revoked is not None and revoked.status == "revoked"
    assert await store.device_revoke("dev_1") is None
    assert await store.device_rotate("dev_1", 2, later) is None
    assert [d.status for d in await store.device_list(None)] == ["revoked"]


async def test_expired_codes_cannot_be_decided(store: Store) -> None:
    await store.device_insert(device(1, expires_in=60), "dc1", "uc1")
    late = NOW + timedelta(seconds=61)
    assert await store.device_decide("dev_1", True, "paul", "publisher", late) is None


async def test_racing_rotations_one_wins(store: Store) -> None:
    await store.device_insert(device(1), "dc1", "uc1")
    await store.device_decide("dev_1", True, "paul", "publisher", NOW)
    await store.device_activate("dev_1", NOW, NOW + timedelta(days=1))
    results = await asyncio.gather(*(store.device_rotate("dev_1", 1, NOW) for _ in range(8)))
    assert sum(r is not None for r in results) == 1


async def test_wrong_guesses_burn_waiting_codes(store: Store) -> None:
    await store.device_insert(device(1), "dc1", "uc1")
    await store.device_insert(device(2, expires_in=1), "dc2", "uc2")
    later = NOW + timedelta(seconds=2)  # device 2 has expired: not counted
    for _ in range(2):
        assert await store.device_failed_guess(later, 3) == []
    burned = await store.device_failed_guess(later, 3)
    assert [d.id for d in burned] == ["dev_1"] and burned[0].status == "burned"
    assert await store.device_by_user_code("uc1", later) is None
    assert await store.device_failed_guess(later, 3) == []


async def test_rows_long_expired_are_purged(store: Store) -> None:
    await store.device_insert(device(1, expires_in=1), "dc1", "uc1")
    much_later = device(2)
    much_later = DeviceRecord(
        **{
            **{f: getattr(much_later, f) for f in much_later.__dataclass_fields__},
            "created_at": NOW + timedelta(days=8),
            "expires_at": NOW + timedelta(days=8, minutes=10),
        }
    )
    assert await store.device_insert(much_later, "dc2", "uc2")
    assert await store.device_get("dev_1") is None
