"""The SQLite store's standing grants (see :mod:`signoff.stores.grant_store`). Every write is
a unit of the store's group commit, so the check that a grant is live and the approval it
makes are one transaction under SQLite's write lock: a revocation is before or after it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from signoff.audit import AuditEntry
from signoff.grants import Grant
from signoff.models import ApprovalRequest
from signoff.stores import sql
from signoff.stores.grant_store import GrantQuery, GrantStore, grant_body, grant_from_row
from signoff.stores.group_commit import Tx
from signoff.stores.outbox import NewDelivery
from signoff.stores.own_writes import OwnWrites

_Q = sql.queries("sqlite")


def insert_grant(tx: Tx, grant: Grant | None) -> None:
    """Inside the write of the approval that makes it (the caller's unit of work)."""
    if grant is None:
        return
    tx.conn.execute(
        _Q["insert_grant"],
        {
            "id": grant.id,
            "tool": grant.tool,
            "agent": grant.agent,
            "expires_at": grant.expires_at.timestamp(),
            "body": grant_body(grant),
        },
    )


def no_live_grant(tx: Tx, request: ApprovalRequest) -> bool:
    """No live grant names the request's agent and tool (whether one covers it is
    :mod:`signoff.granting`'s question, asked only when one does)."""
    params = {
        "agent": request.requested_by,
        "tool": request.tool,
        "now": request.created_at.timestamp(),
    }
    return tx.conn.execute(_Q["any_live_grant"], params).fetchone() is None


def grant_live(tx: Tx, grant_id: str, now: datetime) -> bool:
    row = tx.conn.execute(_Q["grant_live"], {"id": grant_id, "now": now.timestamp()}).fetchone()
    return row is not None


class SqliteGrants(GrantStore):
    # provided by SqliteStore
    _write: Callable[[Callable[[Tx], Any]], Any]
    _read: Callable[[Callable[[sqlite3.Connection], Any]], Any]
    _rows: Callable[..., list[Any]]
    _create: Callable[..., Any]
    _append: Callable[[Tx, list[AuditEntry], list[str], list[int] | None], list[int]]
    _own: OwnWrites

    async def create_granted(
        self, request: ApprovalRequest, audit: list[AuditEntry], grant_id: str, now: datetime
    ) -> Any:
        return await self._create(request, audit, (), lambda tx: grant_live(tx, grant_id, now))

    async def create_ungranted(
        self, request: ApprovalRequest, audit: AuditEntry, deliveries: Sequence[NewDelivery] = ()
    ) -> Any:
        # the check is a statement of the create's own transaction, not a read before it
        def ungranted(tx: Tx) -> bool:
            return no_live_grant(tx, request)

        return await self._create(request, [audit], deliveries, ungranted)

    async def get_grant(self, grant_id: str) -> Grant | None:
        rows = self._rows("get_grant", {"id": grant_id})
        return grant_from_row(*rows[0]) if rows else None

    async def list_grants(self, query: GrantQuery) -> list[Grant]:
        now = None if query.now is None else query.now.timestamp()
        rows = self._rows("list_grants", query.params(now))
        return [grant_from_row(*row) for row in rows]

    async def revoke_grant(self, grant_id: str, by: str, now: datetime, audit: AuditEntry) -> bool:
        params = {"id": grant_id, "by": by, "now": now.timestamp()}
        records = [audit.record()]

        appended: list[int] = []

        def work(tx: Tx) -> bool:
            if tx.conn.execute(_Q["revoke_grant"], params).rowcount != 1:
                return False
            self._append(tx, [audit], records, appended)
            return True

        done: bool = await self._write(work)
        self._own.add(appended)
        return done
