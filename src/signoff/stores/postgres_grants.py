"""The PostgreSQL store's standing grants (see :mod:`signoff.stores.grant_store`).

A write that involves a grant is an explicit transaction on one pooled connection (the
pool's connections are in autocommit; everything else is one statement): the approval's
transition and the grant's insert; or the grant's row taken ``FOR SHARE`` and the approved
request's insert, so a revocation (an ``UPDATE`` of that row) on any replica either commits
first, and the request waits for a human, or waits until the approval commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from signoff.audit import AuditEntry
from signoff.grants import Grant
from signoff.models import ApprovalRequest
from signoff.stores import sql
from signoff.stores.base import audit_json
from signoff.stores.grant_store import GrantQuery, GrantStore, grant_body, grant_from_row
from signoff.stores.outbox import NewDelivery

_Q = sql.queries("postgres")


def _grant_params(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "tool": grant.tool,
        "agent": grant.agent,
        "expires_at": grant.expires_at,
        "body": grant_body(grant),
    }


class PostgresGrants(GrantStore):
    # provided by PostgresStore
    _rows: Callable[..., Any]
    _one: Callable[..., Any]
    _connection: Callable[[], Any]
    _create_params: Callable[..., dict[str, Any]]
    _created: Callable[..., Any]
    _wrote: Callable[[list[int] | None], None]

    async def _transition_row(self, params: dict[str, Any], grant: Grant | None) -> Any:
        """The transition function's row; with a grant, inserted in the same transaction
        when (and only when) the transition wrote the approving state."""
        if grant is None:
            return await self._one("transition", params)
        async with self._connection() as conn, conn.transaction():
            row = await (await conn.execute(_Q["transition"], params)).fetchone()
            if row is not None and row[0] == "ok" and params["body"] is not None:
                await conn.execute(_Q["insert_grant"], _grant_params(grant))
        return row

    async def create_granted(
        self, request: ApprovalRequest, audit: list[AuditEntry], grant_id: str, now: datetime
    ) -> Any:
        params = self._create_params(request, audit, ())
        async with self._connection() as conn, conn.transaction():
            live = await (
                await conn.execute(_Q["grant_live"], {"id": grant_id, "now": now})
            ).fetchone()
            if live is None:
                return None
            row = await (await conn.execute(_Q["create"], params)).fetchone()
        return self._created(request, audit, row, params)

    async def create_ungranted(
        self, request: ApprovalRequest, audit: AuditEntry, deliveries: Sequence[NewDelivery] = ()
    ) -> Any:
        # the check is part of the create's own statement, not a read before it
        params = self._create_params(request, [audit], deliveries)
        params["unless_granted"] = request.created_at
        return self._created(request, [audit], await self._one("create", params), params)

    async def get_grant(self, grant_id: str) -> Grant | None:
        rows = await self._rows("get_grant", {"id": grant_id})
        return grant_from_row(*rows[0]) if rows else None

    async def list_grants(self, query: GrantQuery) -> list[Grant]:
        rows = await self._rows("list_grants", query.params(query.now))
        return [grant_from_row(*row) for row in rows]

    async def revoke_grant(self, grant_id: str, by: str, now: datetime, audit: AuditEntry) -> bool:
        params = {"id": grant_id, "by": by, "now": now}
        async with self._connection() as conn, conn.transaction():
            cursor = await conn.execute(_Q["revoke_grant"], params)
            if cursor.rowcount != 1:
                return False
            appended = await conn.execute(
                _Q["append"], {"request_id": audit.request_id, "audit": audit_json([audit])}
            )
            row = await appended.fetchone()
        self._wrote(row[0] if row else None)
        return True
