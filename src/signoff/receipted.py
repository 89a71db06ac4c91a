"""Approvals that carry their signed receipt (:mod:`signoff.receipts`).

The receipt is signed in the same compare-and-set that approves, by wrapping the transition
the service hands the store, rather than in the pure lifecycle (which holds no key) or at
read time (every read would sign, and a receipt read after a key rotation would differ from
the one the agent already passed on): it is written once, with the approval and in its
audit event, and every path that reads the request (the API, waits, live events, channels'
deliveries) carries the same one. Any transition that approves gets one, whichever path
approved (a decision, or any other way a request may become approved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from signoff import receipts
from signoff.keys import Keyring
from signoff.models import ApprovalRequest, Status
from signoff.stores.base import Change, TransitionFn

__all__ = ["receipt_for", "receipted"]


def receipted(apply: TransitionFn, keys: Callable[[], Keyring], ttl_s: float) -> TransitionFn:
    """``apply``, and a signed receipt on the request it approves. ``keys`` is called only
    when a request is approved (the keyring is loaded on first use)."""

    def sealed(req: ApprovalRequest) -> Change:
        change = apply(req)
        new = change.request
        if new is None or new.status is not Status.APPROVED or req.status is Status.APPROVED:
            return change
        token = receipt_for(new, keys(), ttl_s)
        change.request = new.model_copy(update={"receipt": token})
        change.audit = [
            replace(entry, data={**entry.data, "receipt": token})
            if entry.type == "request.approved"
            else entry
            for entry in change.audit
        ]
        return change

    return sealed


def receipt_for(req: ApprovalRequest, keys: Keyring, ttl_s: float) -> str:
    """The receipt of an approved request: issued when it was decided, good for ``ttl_s``."""
    if req.decided_at is None:
        raise ValueError("only a decided request has a receipt")
    iat = int(req.decided_at.timestamp())
    return receipts.mint(
        keys,
        rid=req.id,
        tool=req.tool,
        digest=req.args_digest,
        by=list(dict.fromkeys(d.by for d in req.approvals)),
        iat=iat,
        exp=iat + max(1, int(ttl_s)),
    )
