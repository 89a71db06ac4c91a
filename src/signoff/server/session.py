"""Dashboard sessions: login links, the session cookie, and CSRF.

- A login link carries a short-lived (≤ 10 min) token for the login-link audience. GET
  ``/login?token=…`` only shows a "Sign in" button, because mail and chat scanners fetch
  links; the POST from that button spends the token (once) and sets the session cookie.
- The cookie holds a signed session token with its own audience, so that any replica with
  the server key can check it without a shared session store. It is HttpOnly,
  SameSite=Strict, Path=/ and Secure over https.
- A state-changing request authenticated by the cookie must send ``X-CSRF-Token``: an HMAC
  of the session's id with the server key, which only pages served to that session carry.
  Requests with a bearer token never reach this check (a browser does not add those).

The server's own tokens are always HS256 with the server key, whatever the ``[auth]``
algorithms for bearer tokens are (an OIDC provider's RS256, say).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from signoff.auth import LOGIN_LINK_AUDIENCE, Issuer, Verifier
from signoff.config import Config
from signoff.errors import Forbidden, SignoffError, Unauthorized
from signoff.models import Principal
from signoff.stores.base import Store

SESSION_AUDIENCE = "signoff:session"
SESSION_COOKIE = "signoff_session"
#: the sign-in form's own CSRF cookie: there is no session to bind a token to yet
LOGIN_COOKIE = "signoff_login"
#: the page a browser was on when it was sent to sign in, to return to afterwards
NEXT_COOKIE = "signoff_next"
NEXT_TTL_S = 900
CSRF_HEADER = "x-csrf-token"
LOGIN_LINK_TTL_S = 600
SESSION_TTL_S = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: the scope key that tells the API a request came from the dashboard (decisions' ``via``)
VIA_SCOPE_KEY = "signoff.via"
_USED = "this sign-in link was used already; ask for a new one"


class CsrfRejected(Forbidden):
    """A cookie-authenticated change without the session's CSRF token."""

    code = "csrf"


def own_tokens(key: bytes, config: Config) -> tuple[Issuer, Verifier]:
    """Issuer and verifier for the server's own tokens (HS256, server key), with the same
    role claim as every other token so that a role reads back the way it was written."""
    auth = replace(config.auth, algorithms=("HS256",), jwks_url=None, issuer=None, audience=None)
    return Issuer(key, auth, config.roles), Verifier(key, auth, config.roles)


def login_link(
    key: bytes, config: Config, base_url: str, sub: str, role: str, ttl_s: int = LOGIN_LINK_TTL_S
) -> str:
    """A single-use link that signs ``sub`` in with ``role`` (what ``signoff login-link``
    prints)."""
    if not 0 < ttl_s <= LOGIN_LINK_TTL_S:
        raise SignoffError(f"a login link lives at most {LOGIN_LINK_TTL_S} seconds")
    issuer, _ = own_tokens(key, config)
    token = issuer.token(sub, kind="approver", role=role, ttl=ttl_s, audience=LOGIN_LINK_AUDIENCE)
    return f"{base_url.rstrip('/')}/login?{urlencode({'token': token})}"


class Sessions:
    """Signs people in and recognises them on later requests."""

    def __init__(self, key: bytes, config: Config, store: Store) -> None:
        self._key = key
        self.issuer, self.verifier = own_tokens(key, config)
        # spent links and ended sessions are kept in the store: every replica sees them
        self._store = store

    # -- login links ----------------------------------------------------------------------

    async def peek_link(self, token: str) -> Principal:
        """Who the link signs in, without spending it (for the confirm page)."""
        claims = self.verifier.claims(token, audience=LOGIN_LINK_AUDIENCE)
        if await self._store.is_spent(f"link:{claims.get('jti', '')}"):
            raise Unauthorized(_USED)
        return self.verifier.principal(claims)

    async def redeem_link(self, token: str) -> Principal:
        """Who the link signs in; it cannot be used again, on any replica."""
        claims = self.verifier.claims(token, audience=LOGIN_LINK_AUDIENCE)
        jti = str(claims.get("jti", ""))
        if not jti or not await self._store.spend(f"link:{jti}", self.verifier.valid_until(claims)):
            raise Unauthorized(_USED)
        principal = self.verifier.principal(claims)
        if principal.kind != "approver" or principal.role is None:
            raise Unauthorized("this sign-in link names no approver role")
        return principal

    # -- sessions -------------------------------------------------------------------------

    def start(self, principal: Principal, *, method: str, name: str | None = None) -> str:
        """A session token for ``principal`` (the cookie's value)."""
        assert principal.role is not None
        extra: dict[str, Any] = {"amr": method}
        if name:
            extra["name"] = name[:200]
        return self.issuer.token(
            principal.sub,
            kind="approver",
            role=principal.role,
            ttl=SESSION_TTL_S,
            audience=SESSION_AUDIENCE,
            extra=extra,
        )

    async def claims(self, request: Request) -> dict[str, Any] | None:
        """The signed-in session's claims, or None (no cookie, expired, signed out)."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            claims = self.verifier.claims(token, audience=SESSION_AUDIENCE)
        except Unauthorized:
            return None
        if await self._store.is_spent(f"session:{claims.get('jti', '')}"):
            return None
        return claims

    async def principal(self, request: Request) -> Principal | None:
        """The API's session hook: the signed-in person, with CSRF checked on changes."""
        claims = await self.claims(request)
        if claims is None:
            return None
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf_token(claims).encode()):
                raise CsrfRejected(
                    "a change made with the dashboard's session needs its X-CSRF-Token header"
                )
        request.scope[VIA_SCOPE_KEY] = "dashboard"
        principal = self.verifier.principal(claims)
        if isinstance(claims.get("name"), str):
            # a display name from the identity provider, for the page (never for decisions)
            principal = replace(principal, claims={**principal.claims, "name": claims["name"]})
        return principal

    def csrf_token(self, claims: dict[str, Any]) -> str:
        message = b"signoff-csrf-v1\0" + str(claims.get("jti", "")).encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def end(self, request: Request) -> None:
        """Sign out: this session's token is refused from now on, by every replica."""
        claims = await self.claims(request)
        if claims is not None:
            await self._store.spend(
                f"session:{claims.get('jti', '')}", self.verifier.valid_until(claims)
            )


# -- cookies -----------------------------------------------------------------------------


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_LINK_TTL_S,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        LOGIN_COOKIE, path="/login", httponly=True, samesite="strict", secure=is_https(request)
    )


def local_path(value: str | None) -> str | None:
    """``value`` if it is a path on this site, else None: a sign-in returns only here, never
    to another site (``//host``, ``/\\host``, ``https://…``) or with a control character."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else None


def remember_page(response: Response, request: Request) -> None:
    """Keep the page being asked for, to return to once signed in (a link or single sign-on:
    Lax, so that the identity provider's way back carries it)."""
    page = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if local_path(page) is None:
        return
    response.set_cookie(
        NEXT_COOKIE,
        page,
        max_age=NEXT_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def page_after_sign_in(request: Request, response: Response | None = None) -> str:
    """Where a fresh session goes: the remembered page, or the queue; the memory is cleared
    on ``response``."""
    if response is not None:
        response.delete_cookie(
            NEXT_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request)
        )
    return local_path(request.cookies.get(NEXT_COOKIE)) or "/"
