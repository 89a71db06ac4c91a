"""Parsed requests by id, with the row version they were read or written at.

Validating a request's JSON is most of the cost of reading it, so a row read again at the
version this process last saw reuses the object parsed then. And a transition starts from
the version this process last wrote or read, without reading the row first: the write's
compare-and-set on the version catches a row someone else changed since (the transition is
then computed again on the row as it is).
"""

from __future__ import annotations

from collections import OrderedDict

from signoff.models import ApprovalRequest
from signoff.stores.base import Versioned

#: how many requests are kept; the ones in flight (waited on, being decided) stay warm
DEFAULT_SIZE = 512


class ParsedRequests:
    """A small LRU map of request id → (version, JSON text, parsed request, whether the
    text is the request's own serialization). Not locked: the stores use it from their
    event loop."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[int, str, ApprovalRequest, bool]] = OrderedDict()

    def parse(self, body: str, version: int, request_id: str | None = None) -> ApprovalRequest:
        """The request in ``body`` at ``version``; the cached object when it is the same."""
        if request_id is not None:
            cached = self._entries.get(request_id)
            if cached is not None and cached[0] == version and cached[1] == body:
                self._entries.move_to_end(request_id)
                return cached[2]
        request = ApprovalRequest.model_validate_json(body)
        # a row written by another version may serialize differently now: not "own"
        self.remember(request, body, version, own=False)
        return request

    def remember(
        self, request: ApprovalRequest, body: str, version: int, *, own: bool = True
    ) -> None:
        """Keep ``request``, whose JSON text at ``version`` is ``body``; ``own``: ``body`` is
        ``request.model_dump_json()`` (the store just wrote it so)."""
        cached = self._entries.get(request.id)
        if cached is not None and cached[0] > version:
            return  # a newer version is already known
        self._entries[request.id] = (version, body, request, own)
        self._entries.move_to_end(request.id)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def json_of(self, request: ApprovalRequest) -> str:
        """``request.model_dump_json()``: the text the store wrote for this very object when
        it is still here, without serializing it again (an answer to the write that made
        it, a live event about it)."""
        cached = self._entries.get(request.id)
        if cached is not None and cached[2] is request and cached[3]:
            return cached[1]
        return request.model_dump_json()

    def versioned(self, request_id: str) -> Versioned | None:
        cached = self._entries.get(request_id)
        return None if cached is None else Versioned(cached[2], cached[0])

    def forget(self, request_id: str) -> None:
        self._entries.pop(request_id, None)

    def clear(self) -> None:
        self._entries.clear()
