"""What the channels that reach people (email, SMS, Ably) share.

- :class:`Person`: who a verified sender is, as the policy file maps it (an email address or
  a phone number → a ``sub`` and a role). The mapping is the only source of identity: nothing
  a message says about its sender is believed.
- Keyed MACs with a purpose string, so that a MAC made for one use (a link, a page's form, a
  code) can never pass for another.
- Bounded reading of what a provider (or anyone on the internet) posts to a channel's route.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.requests import Request

from signoff._util import parse_duration
from signoff.channels.base import Channel, ChannelContext
from signoff.errors import ConfigError, PayloadTooLarge, UsageError
from signoff.models import Principal
from signoff.roles import RoleLadder
from signoff.safe_text import printable


class Person(BaseModel):
    """An approver reached through a channel: who decisions from that address are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200)

    def principal(self, channel: str, address: str) -> Principal:
        # the claims are kept for the record only; identity is sub and role
        return Principal(
            sub=self.sub, role=self.role, claims={"channel": channel, "address": address}
        )


def check_people(people: Mapping[str, Person], roles: RoleLadder, channel: str) -> None:
    """Every mapped role is on the ladder: a typo must not silently approve nothing."""
    for address, person in people.items():
        if person.role not in roles.roles:
            raise ConfigError(
                f"channel {channel!r}: {address} has the role {person.role!r}; "
                f"the roles are {list(roles.roles)}"
            )


def duration(value: Any) -> float:
    """A duration setting: seconds, or a string such as ``"10m"``."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


#: a duration setting: seconds, or a string such as ``"10m"``
Seconds = Annotated[float, BeforeValidator(duration)]


def context_of(channel: Channel) -> ChannelContext:
    if channel.context is None:
        raise UsageError(f"channel {channel.name!r} is not started")
    return channel.context


def mac(key: bytes, purpose: str, *parts: str) -> bytes:
    """HMAC-SHA256 over the purpose and the parts, each NUL-separated (no part can run into
    the next: none of ours contains a NUL)."""
    message = "\0".join((purpose, *parts)).encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two tokens."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused past ``limit`` bytes (signatures are checked over these bytes,
    before anything is parsed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def short(text: str | None, limit: int) -> str:
    """Agent-written ``text`` on one line, without control characters, at most ``limit``
    characters."""
    if not text:
        return ""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
