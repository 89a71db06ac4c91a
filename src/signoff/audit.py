"""The audit log: every step appended where it happens, sealed later into a signed chain.

Three layers, after Certificate Transparency's signed tree heads and CloudTrail's signed
digest files:

1. **Events.** Each state change (and each refused attempt) appends one event in the same
   transaction as the change, without waiting for any other writer: its ``record`` is the
   canonical JSON (RFC 8785) of what happened, and its ``position`` is where the store put
   it. Positions only increase, and a reader never sees a smaller one commit after a larger
   one (see the stores). An event that changes a request also says the state it left the
   request in (:mod:`signoff.evidence`), which binds the request's row to its events.
2. **The chain.** One sealer per cluster (:mod:`signoff.sealer`) takes the events in
   position order and links each to the one before: ``hash = SHA-256("signoff-audit-v2" 0x00
   prev_hash 0x00 seq 0x00 position 0x00 record)``, ``seq`` counting 1, 2, 3 … Changing,
   removing, inserting or reordering a sealed event breaks the chain there.
3. **Checkpoints.** Each sealing ends with a :class:`Checkpoint`: the chain's size and head,
   signed with the server's Ed25519 key (:mod:`signoff.keys`), which the database does not
   hold. A history rewritten with recomputed hashes no longer matches the signed heads, and
   a cut-off tail is shorter than the newest checkpoint, or than one exported elsewhere
   (``signoff audit checkpoint export``).

:mod:`signoff.audit_check` verifies all three.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from signoff.canonical import canonical_json
from signoff.evidence import live_type, state_after
from signoff.types import JSONObject

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditEvent",
    "Checkpoint",
    "Link",
    "iso",
    "link_hash",
    "signed",
]

GENESIS = "0" * 64
_DOMAIN = b"signoff-audit-v2\x00"
_CHECKPOINT_DOMAIN = b"signoff-checkpoint-v1\x00"
#: names the log a checkpoint belongs to, inside what is signed
LOG_NAME = "signoff-audit"


def iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit event before the store appends it."""

    type: str
    request_id: str | None
    actor: JSONObject
    at: datetime
    via: str | None = None
    data: JSONObject = field(default_factory=dict)
    #: ``at`` as the log writes it (the record, the row, the live event: written once)
    at_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at_text", iso(self.at))

    def record(self) -> str:
        """The canonical JSON that is stored, and later hashed, byte for byte."""
        return canonical_json(
            {
                "type": self.type,
                "request_id": self.request_id,
                "actor": self.actor,
                "at": self.at_text,
                "via": self.via,
                "data": self.data,
            }
        )

    @property
    def state(self) -> str | None:
        """The state this event leaves its request in (None: it changes none)."""
        return state_after(self.type, self.data)

    @property
    def live(self) -> str | None:
        """The live event type that streams this event (None: it is not streamed)."""
        return live_type(self.type)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An audit event as stored. ``seq``, ``hash`` and ``prev_hash`` are None until it is
    sealed."""

    position: int
    record: str
    seq: int | None = None
    hash: str | None = None
    prev_hash: str | None = None

    @property
    def body(self) -> JSONObject:
        parsed: JSONObject = json.loads(self.record)
        return parsed

    @property
    def sealed(self) -> bool:
        return self.seq is not None

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def request_id(self) -> str | None:
        value = self.body["request_id"]
        return None if value is None else str(value)

    @property
    def actor(self) -> JSONObject:
        actor: JSONObject = self.body["actor"]
        return actor

    @property
    def at(self) -> str:
        return str(self.body["at"])

    @property
    def via(self) -> str | None:
        value = self.body["via"]
        return None if value is None else str(value)

    @property
    def data(self) -> JSONObject:
        data: JSONObject = self.body["data"]
        return data

    def to_dict(self) -> JSONObject:
        """The event as exported: what happened, then where it sits in the log. The record
        is ``canonical_json`` of every key but the last five, so an exported line can be
        verified on its own (``signoff audit verify --log``)."""
        return {
            **self.body,
            "position": self.position,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, line: JSONObject) -> AuditEvent:
        """The inverse of :meth:`to_dict` (an exported line, a page from the API)."""
        fields = dict(line)
        position = fields.pop("position")
        seq, prev_hash, hash_ = fields.pop("seq"), fields.pop("prev_hash"), fields.pop("hash")
        return cls(int(position), canonical_json(fields), seq, hash_, prev_hash)


def link_hash(prev_hash: str, seq: int, position: int, record: str) -> str:
    """The chain hash of the event at ``seq``: it commits to everything before it."""
    h = hashlib.sha256(_DOMAIN)
    h.update(f"{prev_hash}\x00{seq}\x00{position}\x00".encode())
    h.update(record.encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """One sealed event's place in the chain."""

    seq: int
    position: int
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the chain had ``size`` events, ending in ``head`` (the event at
    ``position``), at ``at``. Like a signed tree head, it commits to the whole history."""

    size: int
    head: str
    position: int
    at: str
    kid: str
    signature: str = ""

    def payload(self) -> bytes:
        """The bytes that are signed: a domain tag, then canonical JSON."""
        document = {
            "log": LOG_NAME,
            "size": self.size,
            "head": self.head,
            "position": self.position,
            "at": self.at,
            "kid": self.kid,
        }
        return _CHECKPOINT_DOMAIN + canonical_json(document).encode()

    def signature_bytes(self) -> bytes:
        text = self.signature
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "head": self.head,
            "position": self.position,
            "at": self.at,
            "kid": self.kid,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, value: Any) -> Checkpoint:
        """A checkpoint as exported; ValueError for anything else."""
        if not isinstance(value, dict):
            raise ValueError("a checkpoint is a JSON object")
        try:
            checkpoint = cls(
                size=value["size"],
                head=value["head"],
                position=value["position"],
                at=value["at"],
                kid=value["kid"],
                signature=value["signature"],
            )
        except KeyError as exc:
            raise ValueError(f"a checkpoint needs {exc.args[0]!r}") from exc
        ints = (checkpoint.size, checkpoint.position)
        texts = (checkpoint.head, checkpoint.at, checkpoint.kid, checkpoint.signature)
        if not all(type(v) is int and v >= 0 for v in ints) or not all(
            isinstance(v, str) for v in texts
        ):
            raise ValueError("a checkpoint's size and position are integers, the rest text")
        return checkpoint


def signed(checkpoint: Checkpoint, sign: Callable[[bytes], bytes]) -> Checkpoint:
    """``checkpoint`` with its signature, made by ``sign(payload) -> bytes``."""
    text = base64.urlsafe_b64encode(sign(checkpoint.payload())).decode().rstrip("=")
    return Checkpoint(
        checkpoint.size, checkpoint.head, checkpoint.position, checkpoint.at, checkpoint.kid, text
    )
