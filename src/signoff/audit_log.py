"""The audit log as the service runs it: the sealer's loop, reading, verifying, and the
checkpoints and keys that people keep elsewhere.

Access (only the highest role reads the log) is the service's business; this is what it
delegates to. See :mod:`signoff.audit` for the design and :mod:`signoff.audit_check` for
what verification finds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from signoff._util import stop_task
from signoff.audit import AuditEvent, Checkpoint
from signoff.audit_check import Verification, verify_store
from signoff.keys import Keyring
from signoff.sealer import SEAL_INTERVAL_S, seal_once
from signoff.stores.base import Store

log = logging.getLogger(__name__)


class AuditLog:
    """One store's log: sealed by whichever process the store elects, verified on demand."""

    def __init__(
        self,
        store: Store,
        keys: Keyring | Callable[[], Keyring],
        now: Callable[[], datetime],
        *,
        seal_interval: float = SEAL_INTERVAL_S,
    ) -> None:
        self.store = store
        self._keys = keys
        self._now = now
        self.seal_interval = seal_interval
        self._sealer: asyncio.Task[None] | None = None
        self._verifying: asyncio.Future[Verification] | None = None
        self._sealing = asyncio.Lock()

    @property
    def keys(self) -> Keyring:
        """The signing keys, loaded on first use (after the store opened: a store that
        cannot open is the clearer error)."""
        if not isinstance(self._keys, Keyring):
            self._keys = self._keys()
        return self._keys

    def start(self) -> None:
        if self._sealer is None:
            self._sealer = asyncio.create_task(self._seal_forever(), name="signoff-sealer")

    async def aclose(self) -> None:
        """Stop sealing, after sealing what this process wrote (when it leads)."""
        await stop_task(self._sealer)
        self._sealer = None
        try:
            if await self.store.is_leader():
                await self.store.settle()
                await self.seal()
        except Exception:
            log.exception("signoff: the last sealing before stopping failed")

    async def seal(self) -> int:
        """Seal what can be sealed now (this process must lead); how many events were."""
        async with self._sealing:
            return await seal_once(self.store, self.keys, self._now())

    async def _seal_forever(self) -> None:
        while True:
            try:
                if await self.store.is_leader():
                    await self.seal()
            except Exception:
                log.exception("signoff: sealing the audit log failed; retrying")
            await asyncio.sleep(self.seal_interval)

    async def events(
        self, *, request_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        return await self.store.audit_events(request_id=request_id, after=after, limit=limit)

    async def checkpoints(self, *, after: int = 0, limit: int = 1000) -> list[Checkpoint]:
        return await self.store.checkpoints(after, limit)

    async def latest_checkpoint(self) -> Checkpoint | None:
        found: Checkpoint | None = None
        after = 0
        while page := await self.store.checkpoints(after, 1000):
            found, after = page[-1], page[-1].size
        return found

    async def verify(self, against: Checkpoint | None = None) -> Verification:
        """Verify the whole log. One verification runs at a time: callers that ask while one
        runs share its result (a check against an exported checkpoint runs on its own)."""
        await self.store.settle()  # what this process wrote is counted, sealed or not
        if against is not None:
            return await verify_store(self.store, self.keys, against=against, now=self._now())
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.ensure_future(
                verify_store(self.store, self.keys, now=self._now())
            )
        return await asyncio.shield(self._verifying)
