"""Signed receipts: proof, for the service a tool calls, that someone approved this call.

An approved request carries ``receipt``, a compact JWS (RFC 7515, ``alg`` EdDSA, RFC 8037)
over::

    {"rid": "apr_…", "tool": "issue_refund", "digest": "sha256:…" (of final_args),
     "by": ["alice"], "iat": 1767225600, "exp": 1767229200}

signed with the same Ed25519 keyring that signs the audit log's checkpoints (:mod:`signoff.keys`:
one key to manage, rotated once, published once at ``GET /.well-known/jwks.json``). The
header names the key (``kid``, its RFC 7638 thumbprint) and the type
(``typ: signoff-receipt+jwt``), so that a receipt is never mistaken for another JWT signed
by the same key.

The service a tool calls runs :func:`verify` with the published keys, the tool's name and
the arguments it was asked to act on; it refuses a call nobody approved even when the
agent's process is compromised, because the agent never holds the private key. A receipt
is not single-use by itself: a service that must not act twice on one approval keeps the
``rid``s it has seen until their ``exp`` (docs/security.md).

Inside a gated tool, :func:`current_receipt` gives the receipt of the call being run, to
pass on (a header, a field) to the service the tool calls.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from signoff.canonical import digest as args_digest
from signoff.errors import ConfigError, InvalidReceipt, ReceiptExpired, ReceiptMismatch
from signoff.keys import Keyring, KeySet, PublicKey, public_key

__all__ = [
    "ALGORITHM",
    "DEFAULT_TTL_S",
    "TYPE",
    "Receipt",
    "current_receipt",
    "mint",
    "verify",
]

ALGORITHM = "EdDSA"
TYPE = "signoff-receipt+jwt"
#: how long a receipt is good for when the configuration does not say
DEFAULT_TTL_S = 3600.0
_CLAIMS = ("rid", "tool", "digest", "by", "iat", "exp")

_current: ContextVar[str | None] = ContextVar("signoff_receipt", default=None)


def current_receipt() -> str | None:
    """The receipt of the approved call whose tool body is running now (None outside one,
    or for a call that ran without an approval)."""
    return _current.get()


def running_with(receipt: str | None) -> Any:
    """Set :func:`current_receipt` while a tool runs; returns the token to reset it with."""
    return _current.set(receipt)


def finished(token: Any) -> None:
    _current.reset(token)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt that verified: what was approved, by whom, until when."""

    rid: str
    tool: str
    digest: str
    by: tuple[str, ...]
    iat: int
    exp: int
    kid: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _segment(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def mint(
    keys: Keyring,
    *,
    rid: str,
    tool: str,
    digest: str,
    by: Iterable[str],
    iat: int,
    exp: int,
) -> str:
    """A compact JWS over the approval, signed with the keyring's current key.

    Deterministic (Ed25519 signatures are, RFC 8032, and the JSON is sorted): the same
    approval signed with the same key gives the same receipt."""
    header = {"alg": ALGORITHM, "kid": keys.current.kid, "typ": TYPE}
    claims = {"rid": rid, "tool": tool, "digest": digest, "by": list(by), "iat": iat, "exp": exp}
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    return f"{signing_input}.{_b64(keys.sign(signing_input.encode()))}"


class _Trusted(Protocol):
    def trusted(self, kid: str) -> PublicKey | None: ...


Keys = _Trusted | Mapping[str, Any] | Iterable[PublicKey] | str


def verify(
    token: str | bytes,
    keys: Keys,
    *,
    tool: str | None = None,
    args: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> Receipt:
    """Check a receipt; return what it attests, or raise :class:`InvalidReceipt`.

    ``keys``: the server's JWKS (the parsed ``GET /.well-known/jwks.json``, or its text), a
    :class:`Keyring` / :class:`KeySet`, or public keys. Refused: anything but EdDSA (no
    ``none``, no HMAC with a public key as the secret), a key not among ``keys``, a bad
    signature, a wrong ``typ``, a missing claim, an expired receipt
    (:class:`ReceiptExpired`; ``now`` is a Unix time, default the clock), and when given, a
    different ``tool`` or ``args`` whose digest is not the approved one
    (:class:`ReceiptMismatch`)."""
    if isinstance(token, bytes):  # as a header value may arrive
        token = token.decode("ascii", "replace")
    if token.count(".") != 2:
        raise InvalidReceipt("a receipt is a compact JWS: three base64url parts")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidReceipt(f"the receipt's header cannot be read: {exc}") from exc
    # checked before any key is chosen: an attacker picks the header's alg (alg confusion)
    if header.get("alg") != ALGORITHM:
        raise InvalidReceipt(f"receipts are signed with EdDSA, not {header.get('alg')!r}")
    if header.get("typ") != TYPE:
        raise InvalidReceipt(f"not a signoff receipt (typ {header.get('typ')!r})")
    kid = header.get("kid")
    key = _trusted(keys).trusted(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidReceipt(f"the receipt's key {kid!r} is not one of the trusted keys")
    try:
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[ALGORITHM],
            # time is checked below, against ``now``; the signature and alg by PyJWT
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidReceipt(f"the receipt's signature does not verify: {exc}") from exc
    receipt = _receipt(claims, key.kid)
    current = now if now is not None else time.time()
    if current >= receipt.exp:
        raise ReceiptExpired(f"the receipt expired at {receipt.exp} (now {int(current)})")
    if tool is not None and receipt.tool != tool:
        raise ReceiptMismatch(f"the receipt approves {receipt.tool!r}, not {tool!r}")
    if args is not None and args_digest(dict(args)) != receipt.digest:
        raise ReceiptMismatch("the arguments are not the ones that were approved")
    return receipt


def _receipt(claims: Mapping[str, Any], kid: str) -> Receipt:
    missing = [name for name in _CLAIMS if name not in claims]
    if missing:
        raise InvalidReceipt(f"the receipt lacks {missing}")
    rid, tool, digest, by = claims["rid"], claims["tool"], claims["digest"], claims["by"]
    iat, exp = claims["iat"], claims["exp"]
    texts = all(isinstance(v, str) for v in (rid, tool, digest))
    people = isinstance(by, list) and all(isinstance(v, str) for v in by)
    times = all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp))
    if not (texts and people and times):
        raise InvalidReceipt("the receipt's claims have the wrong types")
    return Receipt(rid, tool, digest, tuple(by), iat, exp, kid)


def _trusted(keys: Keys) -> _Trusted:
    if isinstance(keys, (Keyring, KeySet)):
        return keys
    if isinstance(keys, str):
        try:
            parsed = json.loads(keys)
        except ValueError as exc:
            raise InvalidReceipt("the key set is not JSON") from exc
        if not isinstance(parsed, Mapping):
            raise InvalidReceipt("a JWKS is an object with a list of keys")
        return KeySet(_from_jwks(parsed))
    if isinstance(keys, Mapping):
        return KeySet(_from_jwks(keys))
    if hasattr(keys, "trusted"):
        return keys  # type: ignore[return-value]  # any object with trusted(kid)
    return KeySet(keys)


def _from_jwks(jwks: Mapping[str, Any]) -> list[PublicKey]:
    """The Ed25519 keys of a JWKS, under their published ``kid``; any other kind of key is
    left out, so a JWKS that also lists RSA or HMAC keys never widens what verifies."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise InvalidReceipt("a JWKS is an object with a list of keys")
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        x = entry.get("x")
        if not isinstance(x, str):
            continue
        try:
            key = public_key(x)
        except ConfigError:
            continue
        kid = entry.get("kid")
        found.append(PublicKey(kid, key.key) if isinstance(kid, str) else key)
    return found
