"""What a store keeps of devices signed in with ``signoff login`` (RFC 8628).

Every change to a device is a compare-and-set on its status (and, for a refresh, on its
``refresh_gen``), so that two replicas answering the same device at once can never both
win: a device code is exchanged once, a refresh token rotates once, a revocation sticks.
Nothing here keeps a copy in the process: every replica reads the row on each use, which is
what makes a revocation effective at once everywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta

#: a device's statuses: waiting for a person, confirmed, token issued, refused, revoked,
#: or burned (too many wrong user codes were tried while it waited)
DEVICE_STATUSES = ("pending", "approved", "active", "denied", "revoked", "burned")
#: the statuses a signed-in device can be listed with
LISTED_STATUSES = ("active", "revoked")
#: rows are kept this long past their expiry (for the devices page), then purged
KEEP_AFTER_EXPIRY = timedelta(days=7)
#: how many seconds a poll that came too soon adds to the interval (RFC 8628 §3.5)
SLOW_DOWN_S = 5


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device authorization, as stored (the codes only as hashes, kept apart)."""

    id: str
    name: str
    #: the client address that asked for the code
    address: str
    status: str
    sub: str | None
    role: str | None
    created_at: datetime
    #: pending: when the user code expires; active: when the refresh chain ends
    expires_at: datetime
    interval_s: int
    last_poll_at: datetime | None
    #: wrong user codes tried (anywhere) while this one was pending
    failures: int
    #: how many refresh tokens were issued; only the newest is accepted
    refresh_gen: int
    decided_at: datetime | None
    used_at: datetime | None


class DeviceStore(ABC):
    """The device methods every store has (a mixin per store implements them)."""

    @abstractmethod
    async def device_insert(
        self, device: DeviceRecord, device_code_hash: str, user_code_hash: str
    ) -> bool:
        """Insert a pending device; False (nothing written) when a pending device that has
        not expired has the same user code (draw another). Purges rows long expired."""

    @abstractmethod
    async def device_get(self, device_id: str) -> DeviceRecord | None: ...

    @abstractmethod
    async def device_by_user_code(self, user_code_hash: str, now: datetime) -> DeviceRecord | None:
        """The pending, unexpired device with this user code."""

    @abstractmethod
    async def device_poll(
        self, device_code_hash: str, now: datetime
    ) -> tuple[DeviceRecord, bool] | None:
        """Record a poll of the token endpoint: the device after it, and whether the poll
        came sooner than ``interval_s`` after the previous one (the interval then grows by
        :data:`SLOW_DOWN_S`, for this and every later poll). None: no such device code."""

    @abstractmethod
    async def device_decide(
        self, device_id: str, approve: bool, sub: str, role: str, now: datetime
    ) -> DeviceRecord | None:
        """pending and unexpired → approved (bound to ``sub`` and ``role``) or denied."""

    @abstractmethod
    async def device_activate(
        self, device_id: str, now: datetime, expires_at: datetime
    ) -> DeviceRecord | None:
        """approved and unexpired → active, with refresh generation 1 and the refresh
        chain's end: the device code is exchanged once."""

    @abstractmethod
    async def device_rotate(self, device_id: str, gen: int, now: datetime) -> DeviceRecord | None:
        """active, unexpired and at refresh generation ``gen`` → generation ``gen + 1``."""

    @abstractmethod
    async def device_revoke(self, device_id: str) -> DeviceRecord | None:
        """pending, approved or active → revoked; None when it is none of those."""

    @abstractmethod
    async def device_failed_guess(self, now: datetime, limit: int) -> list[DeviceRecord]:
        """Count one wrong user code against every pending, unexpired device; those that
        reach ``limit`` are burned (returned)."""

    @abstractmethod
    async def device_list(self, sub: str | None, limit: int = 200) -> list[DeviceRecord]:
        """Signed-in devices (:data:`LISTED_STATUSES`), newest first; ``sub``'s alone
        unless None."""
