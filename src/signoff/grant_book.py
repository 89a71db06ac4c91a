"""Standing grants for the service: the check at every submission, listing, revocation.

The rules are :mod:`signoff.granting`'s; this reads and writes them through the store. A
submission asks the store every time (no cache that could outlive a revocation on another
replica): first whether any live grant names the agent and the tool, in the transaction
that would write the request pending (SQLite; a read before it elsewhere); only if one does
are they read and judged, and the store re-checks, in the transaction that writes the
approved request, that the grant it uses is still live.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from signoff import access, granting
from signoff.audit import AuditEntry
from signoff.errors import Conflict, Forbidden, InvalidArguments, NotFound
from signoff.grants import Grant
from signoff.models import ApprovalRequest, Principal
from signoff.roles import RoleLadder
from signoff.stores.base import Created, Store
from signoff.stores.grant_store import MAX_GRANTS, GrantQuery
from signoff.stores.outbox import NewDelivery


class GrantBook:
    """The service's standing grants (see the module docstring)."""

    def __init__(self, store: Store, roles: RoleLadder, now: Callable[[], datetime]) -> None:
        self._store = store
        self._roles = roles
        self._now = now

    async def create(
        self,
        request: ApprovalRequest,
        created: AuditEntry,
        deliveries: Callable[[ApprovalRequest, list[AuditEntry]], list[NewDelivery]],
    ) -> Created:
        """Write the new pending ``request`` (and its ``created`` event): approved at once
        when a live grant covers it, else pending, with the ``deliveries`` that tell its
        channels. Only when a live grant names its agent and tool (found in the create's
        own transaction where the store can) are the grants read and judged."""
        if request.policy.quorum > 1:
            # never covered (granting.not_covered): spare the look
            return await self._store.create(request, created, deliveries(request, [created]))
        pending = deliveries(request, [created])
        written = await self._store.create_ungranted(request, created, pending)
        if written is None:
            written = await self._approve_if_granted(request, created)
        if written is None:
            written = await self._store.create(request, created, pending)
        return written

    async def _approve_if_granted(
        self, request: ApprovalRequest, created: AuditEntry
    ) -> Created | None:
        """Write the new pending ``request`` (and its ``created`` event) approved at once,
        when a live grant covers it; None, with nothing written, when none does."""
        now = self._now()
        query = GrantQuery(
            agent=request.requested_by, tool=request.tool, active=True, now=now, limit=MAX_GRANTS
        )
        for grant in await self._store.list_grants(query):
            if granting.not_covered(grant, request, self._roles, now) is not None:
                continue
            change = granting.approve_by_grant(request, grant, now)
            if change.request is None:
                continue
            audit = [created, *change.audit]
            written = await self._store.create_granted(change.request, audit, grant.id, now)
            if written is not None:
                return written
            # revoked (or expired) since it was read: another grant may still cover it
        return None

    async def list(
        self,
        principal: Principal,
        *,
        agent: str | None = None,
        tool: str | None = None,
        active: bool | None = None,
        limit: int = 100,
    ) -> list[Grant]:
        """Grants, newest first; approvers only (an agent does not learn what it may do
        unasked)."""
        self._require_approver(principal)
        if not 1 <= limit <= MAX_GRANTS:
            raise InvalidArguments(f"limit must be between 1 and {MAX_GRANTS}")
        query = GrantQuery(agent=agent, tool=tool, active=active, now=self._now(), limit=limit)
        return await self._store.list_grants(query)

    async def get(self, grant_id: str, principal: Principal) -> Grant:
        self._require_approver(principal)
        grant = await self._store.get_grant(grant_id)
        if grant is None:
            raise NotFound(f"no grant {grant_id}")
        return grant

    async def revoke(self, grant_id: str, principal: Principal) -> Grant:
        """Revoke a grant, at once for every replica (they read grants from the store at
        each submission). Its granter or the highest role only; audited."""
        grant = await self.get(grant_id, principal)
        if (why := granting.revoke_refusal(grant, principal, self._roles)) is not None:
            raise Forbidden(why)
        now = self._now()
        entry = granting.revocation(grant, principal, now)
        if not await self._store.revoke_grant(grant_id, principal.sub, now, entry):
            raise Conflict(f"the grant {grant_id} is already revoked", grant_id=grant_id)
        return await self.get(grant_id, principal)

    def _require_approver(self, principal: Principal) -> None:
        if principal.kind != "approver":
            raise Forbidden("only approvers may see or revoke grants")
        access.require_reader(principal, self._roles)
