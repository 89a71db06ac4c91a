"""The outbox for its readers: listing deliveries and retrying one, for the highest role
only (a delivery names the channels the operator wired up and what went wrong with them).
The API, the CLI (through the API) and the dashboard all come through here."""

from __future__ import annotations

from signoff import access
from signoff.errors import BadRequest, Conflict, NotFound
from signoff.models import Principal
from signoff.service import ApprovalService
from signoff.stores.outbox import Delivery, DeliveryQuery, DeliveryStatus

MAX_LIMIT = 1000
_STATUSES = [s.value for s in DeliveryStatus]


def query(
    *,
    status: str | None = None,
    channel: str | None = None,
    request_id: str | None = None,
    limit: int = 100,
    before: int | None = None,
) -> DeliveryQuery:
    """A listing's filters, checked: a bad one is a 400, never a database error."""
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"status must be one of {_STATUSES}")
    for name, value in (("channel", channel), ("request_id", request_id)):
        if value is not None and not (0 < len(value) <= 200):
            raise BadRequest(f"{name} must be 1 to 200 characters")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    if before is not None and not 0 < before < 2**62:
        raise BadRequest("before must be a positive whole number")
    return DeliveryQuery(status, channel, request_id, limit, before)


class Deliveries:
    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    def _require(self, principal: Principal) -> None:
        access.require_auditor(principal, self.service.roles, "the deliveries")

    async def list(self, principal: Principal, wanted: DeliveryQuery) -> list[Delivery]:
        self._require(principal)
        return await self.service.store.list_deliveries(wanted)

    async def retry(self, principal: Principal, delivery_id: str) -> Delivery:
        """Make a failed delivery due now, with a fresh round of attempts."""
        self._require(principal)
        found = await self.service.store.retry_delivery(delivery_id, self.service.now())
        if found is None:
            raise NotFound(f"no delivery {delivery_id}")
        if found.status is DeliveryStatus.DELIVERED:
            raise Conflict(f"delivery {delivery_id} was delivered already")
        if found.attempts != 0:
            raise Conflict(f"delivery {delivery_id} is being sent right now")
        return found
