"""Is an interaction Slack's? The v0 signature over the raw body with the app's signing
secret (slack-sdk's ``SignatureVerifier``), a timestamp within 5 minutes either way, a body
of bounded size that arrives in bounded time, and its ``payload`` field as JSON."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier
from starlette.requests import Request

from signoff.channels.base import ChannelContext
from signoff.channels.inbound import read_body as read_bounded
from signoff.types import JSONObject

#: Slack's window for a request's timestamp, either way (seconds)
WINDOW_S = 300
#: the largest interaction accepted (a payload carries the whole message it came from)
MAX_BODY = 2_000_000
BODY_TIMEOUT_S = 10.0


class ContextClock(Clock):
    """slack-sdk's clock, reading the service's."""

    def __init__(self, context: ChannelContext) -> None:
        self._now = context.now

    def now(self) -> float:
        return self._now()


def unverified(
    verifier: SignatureVerifier,
    context: ChannelContext,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
) -> str | None:
    """Why the request is not Slack's, or None."""
    if not timestamp or not signature:
        return "the X-Slack-Request-Timestamp and X-Slack-Signature headers are required"
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "X-Slack-Request-Timestamp is not a Unix time"
    if abs(context.now() - int(timestamp)) > WINDOW_S:
        return "the request's timestamp is more than 5 minutes away"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        return "the signature does not verify"
    return None


def read_payload(body: bytes) -> JSONObject | None:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=20)
        data = json.loads(fields["payload"][0])
    except (KeyError, IndexError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


async def read_body(request: Request) -> bytes:
    return await read_bounded(request, MAX_BODY, timeout_s=BODY_TIMEOUT_S)
