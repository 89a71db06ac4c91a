"""Callback tokens: the secret part of a webhook's ``callbackUrl``.

A token is ``<request id>.<expiry>.<mac>``: the MAC is HMAC-SHA256 under a key derived from
the server's key for this purpose only, over the channel's name, the request id and the
expiry (the request's own ``expires_at``, whole seconds rounded up). So a token

- is unguessable (256 bits of MAC) and cannot be altered to name another request, another
  channel or a later expiry;
- is checked without touching the store, so a forged one costs a hash, not a query;
- expires with its request;
- is the same on every retry of a delivery (it is a function of the request), so a
  receiver that deduplicates on ``webhook-id`` sees one URL.

Single use is the store's business: the channel spends ``spend_key(...)`` on the first
decision made through the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime

#: the label the purpose key is derived under: tokens for nothing else verify here
PURPOSE = b"signoff/channels/webhook-callback/v1"
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_EXPIRY = re.compile(r"[0-9]{1,12}")
_MAC = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class CallbackToken:
    """What a verified token names."""

    request_id: str
    #: seconds since the epoch after which the token is void
    expires: int


def _key(server_key: bytes) -> bytes:
    return hmac.new(server_key, PURPOSE, hashlib.sha256).digest()


def _mac(server_key: bytes, channel: str, request_id: str, expires: int) -> str:
    signed = "\x00".join((channel, request_id, str(expires))).encode()
    digest = hmac.new(_key(server_key), signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(server_key: bytes, channel: str, request_id: str, expires_at: datetime) -> str:
    """The token for ``request_id`` through ``channel``, void after ``expires_at``."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise ValueError("a request id is 1 to 100 URL-safe characters")
    expires = math.ceil(expires_at.timestamp())
    return f"{request_id}.{expires}.{_mac(server_key, channel, request_id, expires)}"


def read(server_key: bytes, channel: str, token: str) -> CallbackToken | None:
    """What ``token`` names, if this server made it for ``channel``; None for anything
    else (malformed, forged, another channel's). Expiry is the caller's check."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    request_id, expires, mac = parts
    if not (
        _REQUEST_ID.fullmatch(request_id) and _EXPIRY.fullmatch(expires) and _MAC.fullmatch(mac)
    ):
        return None
    expected = _mac(server_key, channel, request_id, int(expires))
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return None
    return CallbackToken(request_id, int(expires))


def spend_key(channel: str, request_id: str) -> str:
    """The single-use key the store records once a decision came through the URL."""
    return f"webhook-callback:{channel}:{request_id}"
