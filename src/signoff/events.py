"""Live events: what subscribers (waiting agents, dashboards, channels) are told.

Each event is the audit event of the change it reports (stored in the same transaction);
its id is the event's position in the audit log, which increases, so a subscriber that
reconnects can replay everything after the last id it saw.
A live event carries the request as the change left it; a replayed one, the request as it
is now.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from signoff.models import ApprovalRequest
from signoff.types import JSONObject


class EventType(StrEnum):
    CREATED = "request.created"
    DECIDED = "request.decided"
    EXPIRED = "request.expired"
    CANCELLED = "request.cancelled"
    OUTCOME = "request.outcome"
    #: an approved request was claimed for execution (not in the contract's list, but
    #: streamed too, so that dashboards can show that the call is running)
    CONSUMED = "request.consumed"
    #: a pending request was escalated to more channels (config ``[[routes]] escalate``)
    ESCALATED = "request.escalated"


class Event:
    """A stored live event about one request."""

    __slots__ = ("_json", "_raw", "_wire", "at", "id", "prev", "request_id", "snapshot", "type")

    def __init__(
        self,
        id: int,
        type: str,
        request_id: str,
        at: str,
        snapshot: ApprovalRequest,
        prev: int | None = None,
        raw: str | None = None,
    ) -> None:
        self.id = id
        self.type = type
        self.request_id = request_id
        self.at = at
        self.snapshot = snapshot
        #: an id at or below which every earlier event lies: no live event has an id between
        #: ``prev`` and ``id``. None when the writer cannot know (other writers commit in
        #: parallel): such an event wakes waiters but is streamed only once read back in order
        self.prev = prev
        self._json: JSONObject | None = None
        self._wire: str | None = None
        #: ``snapshot`` as the store holds it (its JSON text), where the store had it at hand
        self._raw = raw

    @property
    def request(self) -> JSONObject:
        """The request as JSON (computed on first use: most subscribers never need it)."""
        if self._json is None:
            self._json = self.snapshot.model_dump(mode="json")
        return self._json

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "at": self.at, "request": self.request}

    def wire(self) -> str:
        """The event as the JSON text streams send, made once however many streams send it."""
        if self._wire is None:
            if self._raw is not None:
                # the request's JSON as stored, spliced in: not serialized once more per event
                head = {"id": self.id, "type": self.type, "at": self.at}
                text = json.dumps(head, separators=(",", ":"))
                self._wire = text[:-1] + ',"request":' + self._raw + "}"
            else:
                self._wire = json.dumps(self.to_dict(), separators=(",", ":"))
        return self._wire

    def __repr__(self) -> str:
        return f"Event({self.id}, {self.type!r}, {self.request_id!r})"
