"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com): the symmetric
``v1`` scheme, HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"``.

Written here rather than taken from the ``standardwebhooks`` package because it is a dozen
lines of ``hmac`` and because that package's ``verify`` reads the wall clock (a fixed ±5
minutes against ``datetime.now``): signoff's clock is injected. The tests verify what is
signed here with the package itself, so the two cannot drift apart.

Secrets are ``whsec_`` followed by the base64 of 24 to 64 random bytes (the spec's range).
During a rotation a message carries one signature per valid secret, space-separated, and
a receiver accepts any of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: the reference libraries' tolerance for ``webhook-timestamp``, both ways
TOLERANCE_S = 300


def secret_bytes(secret: str) -> bytes:
    """The key in a ``whsec_…`` secret. Raises ValueError, naming nothing of the secret."""
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a Standard Webhooks secret starts with {SECRET_PREFIX!r}")
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after {SECRET_PREFIX!r} must be base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"the secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes "
            f'(it holds {len(key)}); make one with: python -c "import base64, secrets; '
            f"print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\""
        )
    return key


def _mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: ``v1,<base64>`` for each key, space-separated."""
    if "." in msg_id or not msg_id:
        raise ValueError("a webhook id may not be empty or hold '.'")
    return " ".join(
        "v1," + base64.b64encode(_mac(key, msg_id, timestamp, body)).decode() for key in keys
    )


def headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, msg_id, timestamp, body),
    }


def verify(keys: Sequence[bytes], given: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Why the signed ``body`` with headers ``given`` does not verify under any of ``keys``,
    or None when it does. ``given`` must look names up case-insensitively (as Starlette's
    headers do)."""
    msg_id = given.get("webhook-id")
    stamp = given.get("webhook-timestamp")
    signatures = given.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        return "the webhook-id, webhook-timestamp and webhook-signature headers are required"
    if not stamp.isdigit() or len(stamp) > 12:
        return "webhook-timestamp must be whole seconds since the epoch"
    timestamp = int(stamp)
    if abs(now - timestamp) > TOLERANCE_S:
        return f"webhook-timestamp is more than {TOLERANCE_S} seconds away from now"
    expected = [_mac(key, msg_id, timestamp, body) for key in keys]
    for item in signatures.split(" ")[:16]:
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # every key is compared, in constant time, so timing tells nothing about which
        if any([hmac.compare_digest(candidate, mac) for mac in expected]):  # noqa: C419
            return None
    return "no signature matches"
