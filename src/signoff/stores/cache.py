"""Parsed requests by id, for stores that keep each request as JSON text.

Validating a request's JSON is most of the cost of reading it. Requests are immutable
values, so a row read again with the same text reuses the object parsed last time: a
transition, which reads the request it is about to change, then skips the validation.
"""

from __future__ import annotations

from collections import OrderedDict

from signoff.models import ApprovalRequest

#: how many requests are kept; the ones in flight (waited on, being decided) stay warm
DEFAULT_SIZE = 512


class ParsedRequests:
    """A small LRU map of request id → (JSON text, parsed request). Not locked: the stores
    use it from their event loop."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[str, ApprovalRequest]] = OrderedDict()

    def parse(self, body: str, request_id: str | None = None) -> ApprovalRequest:
        """The request in ``body``; reused when ``request_id``'s cached text is ``body``."""
        if request_id is not None:
            cached = self._entries.get(request_id)
            if cached is not None and cached[0] == body:
                self._entries.move_to_end(request_id)
                return cached[1]
        request = ApprovalRequest.model_validate_json(body)
        self.remember(request, body)
        return request

    def remember(self, request: ApprovalRequest, body: str) -> None:
        """Keep ``request``, whose JSON text is ``body`` (just written or just read)."""
        self._entries[request.id] = (body, request)
        self._entries.move_to_end(request.id)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
