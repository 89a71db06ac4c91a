"""The sealer: links new audit events into the chain and signs a checkpoint over them.

Every process that runs an :class:`~signoff.service.ApprovalService` runs a sealer, and the
one that the store elects leader (:meth:`Store.is_leader`, the sweeper's election) seals:
it reads the events after the chain's head in position order (only those below which no
event can still commit), links each to the one before (:func:`signoff.audit.link_hash`),
and appends the links with a checkpoint signed by the server's key, compare-and-set on the
head. A second sealer that raced it finds the head moved and writes nothing; a leader that
dies mid-seal leaves nothing behind (its transaction never committed), and the next leader
starts from the head it finds. So every event is sealed exactly once, in one order.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from signoff.audit import GENESIS, Checkpoint, Link, iso, link_hash, signed
from signoff.keys import Keyring
from signoff.stores.base import Store, StoredEvent

log = logging.getLogger(__name__)

#: how often the leader looks for events to seal
SEAL_INTERVAL_S = 1.0
#: events sealed, and covered by one checkpoint, at a time
SEAL_BATCH = 5000


def chain(head: Link | None, events: list[StoredEvent]) -> list[Link]:
    """The links of ``events`` after ``head``."""
    seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
    links = []
    for event in events:
        seq += 1
        prev = link_hash(prev, seq, event.position, event.record)
        links.append(Link(seq, event.position, prev))
    return links


async def seal_once(store: Store, keys: Keyring, now: datetime) -> int:
    """Seal every event that can be sealed now; how many were."""
    total = 0
    while True:
        head = await store.chain_head()
        events = await store.unsealed(0 if head is None else head.position, SEAL_BATCH)
        if not events:
            return total
        # hashing thousands of records is worth a worker thread; a handful is not
        if len(events) > 200:
            links = await asyncio.to_thread(chain, head, events)
        else:
            links = chain(head, events)
        last = links[-1]
        checkpoint = signed(
            Checkpoint(last.seq, last.hash, last.position, iso(now), keys.current.kid),
            keys.sign,
        )
        if not await store.seal(head, links, checkpoint):
            return total  # another sealer moved the head first: it seals these
        total += len(links)
        if len(events) < SEAL_BATCH:
            return total
