"""Identity: who is calling, from a verified JWT. Nothing else is trusted.

- HS256 with the server's key is the embedded default. The key is ``SIGNOFF_SECRET`` or a
  random key created once, mode 0600, in the data folder.
- RS256/ES256 against a JWKS URL (an OIDC provider) is the production form. The key set is
  fetched in a worker thread (never on the event loop's), cached, and fetched again when a
  token names a key id the cache does not know (at most every 30 s), so keys can rotate.
- The algorithm allow-list is explicit and holds one family only; ``alg=none`` never
  verifies. ``exp``, ``iat``, ``sub`` and ``kind`` are required; ``iss``/``aud`` are checked
  when configured; a small leeway absorbs clock skew.
- The role comes from a configurable claim: a name (``role``), a path (``realm_access.role``)
  or the seed guides' ``ably.channel.*`` claim, whose value may be a JSON string.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jwt

from signoff._util import parse_duration
from signoff.config import AuthConfig
from signoff.errors import ConfigError, Unauthorized
from signoff.models import Principal
from signoff.roles import RoleLadder

Kind = Literal["agent", "approver"]

KEY_FILE = "secret.key"
#: distinct audiences keep one kind of token from being replayed as another (RFC 8725 §3.12)
STREAM_TICKET_AUDIENCE = "signoff:stream-ticket"
LOGIN_LINK_AUDIENCE = "signoff:login-link"
_JWKS_LIFESPAN_S = 300.0
_VERIFIED_CACHE = 1024
_JWKS_COOLDOWN_S = 30.0


def load_or_create_key(data_dir: Path, secret: str | None = None) -> bytes:
    """The server's signing key: ``secret`` when given, else the key file in ``data_dir``,
    created on first use with mode 0600."""
    if secret:
        key = secret.encode()
        if len(key) < 32:
            raise ConfigError("SIGNOFF_SECRET must be at least 32 bytes for HS256")
        return key
    path = data_dir / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)  # another process created it first: use theirs
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ConfigError(f"{path}: the key is too short; delete it to create a new one")
    return key


def role_from_claims(claims: Mapping[str, Any], claim: str, roles: RoleLadder) -> str | None:
    """The role in ``claims`` under ``claim``: an exact key first, then a dotted path.

    A JSON-object string (the Ably user-claim style) is read for its ``role``; a list gives
    its highest known role. Anything else gives no role, which can approve nothing.
    """
    value: Any
    if claim in claims:
        value = claims[claim]
    else:
        value = claims
        for part in claim.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = json.loads(value).get("role")
        except (ValueError, AttributeError):
            return None
    if isinstance(value, list):
        known = [v for v in value if isinstance(v, str) and v in roles.roles]
        return max(known, key=roles.rank) if known else None
    return value if isinstance(value, str) else None


def _set_claim(claims: dict[str, Any], claim: str, value: str) -> None:
    """Put ``value`` where :func:`role_from_claims` will find it."""
    if "*" in claim or "." not in claim:
        claims[claim] = value
        return
    target = claims
    *parents, last = claim.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


@dataclass(frozen=True, slots=True)
class Issuer:
    """Signs the server's own tokens (HS256 with the server key)."""

    key: bytes
    auth: AuthConfig
    roles: RoleLadder

    def token(
        self,
        sub: str,
        *,
        kind: Kind,
        role: str | None = None,
        ttl: float | str = "1h",
        audience: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        if not sub:
            raise ConfigError("a token needs a subject (--sub / --agent)")
        if kind == "approver":
            if role is None:
                raise ConfigError("an approver token needs a role")
            self.roles.check(role)
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "kind": kind,
            "iat": now,
            "nbf": now,
            "exp": now + int(parse_duration(ttl)),
            "jti": secrets.token_urlsafe(12),
        }
        if role is not None:
            _set_claim(claims, self.auth.role_claim, role)
        if self.auth.issuer:
            claims["iss"] = self.auth.issuer
        aud = audience or self.auth.audience
        if aud:
            claims["aud"] = aud
        if extra:
            claims.update(extra)
        return jwt.encode(claims, self.key, algorithm="HS256")


class _JwksCache:
    """The provider's key set, fetched off the event loop and refreshed for unknown kids."""

    def __init__(self, url: str, algorithms: tuple[str, ...]) -> None:
        self.url = url
        self.algorithms = algorithms
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise Unauthorized(f"the JWKS URL {self.url!r} is not http(s)")
        try:
            with urllib.request.urlopen(self.url, timeout=10.0) as response:
                keyset = jwt.PyJWKSet.from_dict(json.loads(response.read()))
        except (OSError, ValueError, jwt.PyJWKSetError) as exc:
            raise Unauthorized(f"cannot fetch the identity provider's keys: {exc}") from exc
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._fetched_at = time.monotonic()

    def key(self, kid: str | None) -> jwt.PyJWK:
        """The key for ``kid``. Blocking (it may fetch): call it from a worker thread."""
        if not kid:
            raise Unauthorized("the token names no key id (kid)")
        with self._lock:
            age = time.monotonic() - self._fetched_at
            unknown = kid not in self._keys and (age > _JWKS_COOLDOWN_S or not self._keys)
            if unknown or age > _JWKS_LIFESPAN_S:
                self._fetch()
            found = self._keys.get(kid)
        if found is None:
            raise Unauthorized("the token was signed by an unknown key")
        return found


class Verifier:
    """Turns a bearer token into a :class:`Principal`, or raises :class:`Unauthorized`."""

    def __init__(self, key: bytes | None, auth: AuthConfig, roles: RoleLadder) -> None:
        self.auth = auth
        self.roles = roles
        self._key = key
        self._hmac = all(a.startswith("HS") for a in auth.algorithms)
        self._jwks = None if self._hmac else _JwksCache(auth.jwks_url or "", auth.algorithms)
        if self._hmac and key is None:
            raise ConfigError("HS* tokens need the server key")
        # a token presented again is not verified again (the signature check dominates a
        # request's cost); entries live until shortly before the token expires
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def needs_thread(self) -> bool:
        """Whether :meth:`verify` may block on the network (JWKS)."""
        return self._jwks is not None

    def verify(self, token: str, *, audience: str | None = None) -> Principal:
        if audience is None:
            with self._cache_lock:
                hit = self._verified.get(token)
            if hit is not None and time.time() < hit[1]:
                return hit[0]
        principal = self.principal(self.claims(token, audience=audience))
        if audience is None:
            expires = float(principal.claims.get("exp", 0)) - 1.0
            with self._cache_lock:
                self._verified[token] = (principal, expires)
                if len(self._verified) > _VERIFIED_CACHE:
                    self._verified.popitem(last=False)
        return principal

    def valid_until(self, claims: Mapping[str, Any]) -> datetime:
        """The last moment the token of ``claims`` is accepted (its ``exp`` plus the
        leeway): how long a spent single-use token must be remembered."""
        return datetime.fromtimestamp(float(claims["exp"]) + self.auth.leeway_s + 1, UTC)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal verified ``claims`` describe."""
        kind = claims.get("kind")
        if kind not in ("agent", "approver"):
            raise Unauthorized("the token's kind must be 'agent' or 'approver'")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("the token has no subject")
        role = (
            None if kind == "agent" else role_from_claims(claims, self.auth.role_claim, self.roles)
        )
        kept = {k: claims[k] for k in ("iss", "jti", "exp") if k in claims}
        return Principal(sub=sub, role=role, kind=kind, claims=kept)

    def claims(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in self.auth.algorithms:
            raise Unauthorized(f"token algorithm {alg!r} is not allowed")
        key: Any = self._jwks.key(header.get("kid")) if self._jwks is not None else self._key
        aud = audience or self.auth.audience
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.auth.algorithms),
                audience=aud,
                issuer=self.auth.issuer,
                leeway=self.auth.leeway_s,
                options={
                    "require": ["exp", "iat", "sub"],
                    "verify_aud": aud is not None,
                    "verify_iss": self.auth.issuer is not None,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(_describe(exc)) from exc
        if audience is None and aud is None and "aud" in claims:
            # tickets and login links carry their own audience: never accept them as access
            raise Unauthorized("the token is for another audience")
        return claims


def _describe(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the token is for another audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token is from another issuer"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim!r} claim"
    return f"invalid token: {exc}"
