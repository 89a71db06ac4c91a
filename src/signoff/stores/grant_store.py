"""The store's standing grants (:mod:`signoff.grants`).

A grant is written in the transaction of the approval that makes it (``Change.grant``,
inserted by each store's ``_apply`` with the request's new state). A submission that a
grant covers is written by :meth:`Store.create_granted`: the request, already approved,
with its ``request.created`` and ``request.approved`` events, only if the grant is still
live in that same transaction, so a revocation committed anywhere stops it at once. There
is no cache of grants in any process.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signoff._util import to_datetime
from signoff.audit import AuditEntry
from signoff.grants import Grant

#: the most grants one listing returns
MAX_GRANTS = 500


@dataclass(frozen=True, slots=True)
class GrantQuery:
    agent: str | None = None
    tool: str | None = None
    #: True: only live ones at ``now``; False: only revoked or expired ones; None: all
    active: bool | None = None
    now: datetime | None = None
    limit: int = 100

    def params(self, now: Any) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "tool": self.tool,
            "active": self.active,
            "now": now,
            "limit": min(max(self.limit, 1), MAX_GRANTS),
        }


def grant_body(grant: Grant) -> str:
    return grant.model_dump_json()


def grant_from_row(body: str, revoked_at: Any, revoked_by: str | None) -> Grant:
    """A stored grant: its body with the revocation columns beside it."""
    grant = Grant.model_validate(json.loads(body))
    if revoked_at is None:
        return grant
    at = revoked_at.astimezone(UTC) if isinstance(revoked_at, datetime) else to_datetime(revoked_at)
    return grant.model_copy(update={"revoked_at": at, "revoked_by": revoked_by})


class GrantStore(ABC):
    """The store's grant operations (see the module docstring)."""

    @abstractmethod
    async def get_grant(self, grant_id: str) -> Grant | None: ...

    @abstractmethod
    async def list_grants(self, query: GrantQuery) -> list[Grant]:
        """Grants newest first, filtered."""

    @abstractmethod
    async def revoke_grant(self, grant_id: str, by: str, now: datetime, audit: AuditEntry) -> bool:
        """Revoke the grant at ``now`` with its audit event, in one transaction, if it is not
        revoked yet; False (nothing written) otherwise."""
