"""The memory store's standing grants (see :mod:`signoff.stores.grant_store`): every write
holds the store's lock, so the check that a grant is live and the approval it makes are
one step that a revocation is before or after."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from signoff.audit import AuditEntry
from signoff.grants import Grant
from signoff.models import ApprovalRequest
from signoff.stores.grant_store import MAX_GRANTS, GrantQuery, GrantStore
from signoff.stores.outbox import NewDelivery


class MemoryGrants(GrantStore):
    # provided by MemoryStore
    _lock: threading.Lock
    _grants: dict[str, Grant]
    _insert: Callable[[ApprovalRequest, list[AuditEntry], Sequence[NewDelivery]], Any]
    _append: Callable[[list[AuditEntry]], list[int]]

    def _insert_grant(self, grant: Grant | None) -> None:
        """Called with the lock held, in the write of the approval that makes it."""
        if grant is not None:
            if grant.id in self._grants:
                raise ValueError(f"grant {grant.id} exists already")
            self._grants[grant.id] = grant

    async def create_granted(
        self, request: ApprovalRequest, audit: list[AuditEntry], grant_id: str, now: datetime
    ) -> Any:
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None or not grant.live(now):
                return None
            return self._insert(request, audit, ())

    async def get_grant(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    async def list_grants(self, query: GrantQuery) -> list[Grant]:
        with self._lock:
            grants = list(reversed(self._grants.values()))
        found = [
            g
            for g in grants
            if (query.agent is None or g.agent == query.agent)
            and (query.tool is None or g.tool == query.tool)
            and (query.active is None or query.now is None or g.live(query.now) is query.active)
        ]
        return found[: min(max(query.limit, 1), MAX_GRANTS)]

    async def revoke_grant(self, grant_id: str, by: str, now: datetime, audit: AuditEntry) -> bool:
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None or grant.revoked_at is not None:
                return False
            self._grants[grant_id] = grant.model_copy(update={"revoked_at": now, "revoked_by": by})
            self._append([audit])
            return True
