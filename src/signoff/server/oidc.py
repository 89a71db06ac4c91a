"""Dashboard sign-in through an OpenID Connect provider: the authorization code flow.

``GET /login/oidc`` sends the browser to the provider with a fresh ``state``, ``nonce`` and
PKCE challenge, kept in a short-lived signed cookie (SameSite=Lax: the provider's redirect
back is a cross-site navigation, which a Strict cookie would miss). ``GET /auth/callback``
checks ``state``, exchanges the code at the token endpoint, verifies the ID token against
the provider's published keys (issuer, audience, expiry, nonce; asymmetric algorithms
only), and reads the role from the configured role claim.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
import jwt

from signoff._util import failure_text
from signoff.auth import role_from_claims
from signoff.config import AuthConfig
from signoff.errors import Unauthorized
from signoff.roles import RoleLadder

FLOW_COOKIE = "signoff_oidc"
FLOW_AUDIENCE = "signoff:oidc-flow"
FLOW_TTL_S = 600
CALLBACK_PATH = "/auth/callback"
#: never HS* (the client secret is not a signing key we accept) and never "none"
ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
_DISCOVERY_LIFESPAN_S = 3600.0
_JWKS_COOLDOWN_S = 30.0
_TIMEOUT = aiohttp.ClientTimeout(total=10.0)


#: RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6 error codes, in our own words
_PROVIDER_ERRORS = {
    "access_denied": "access was denied",
    "login_required": "you need to sign in there first",
    "consent_required": "consent is needed",
    "interaction_required": "it needs you to do something there first",
    "account_selection_required": "choose an account there first",
    "invalid_request": "the sign-in request was invalid",
    "unauthorized_client": "this server may not sign people in there",
    "unsupported_response_type": "it does not support this sign-in",
    "invalid_scope": "the scopes asked for are not allowed",
    "server_error": "it failed",
    "temporarily_unavailable": "it is temporarily unavailable",
}


class OidcError(Unauthorized):
    code = "oidc"


@dataclass(frozen=True, slots=True)
class SignedIn:
    sub: str
    role: str | None
    name: str | None


class Oidc:
    """One configured provider: discovery, the redirect, and the code exchange."""

    def __init__(self, auth: AuthConfig, roles: RoleLadder, key: bytes) -> None:
        assert auth.oidc_discovery_url and auth.oidc_client_id
        self.auth = auth
        self.roles = roles
        self._key = key
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = 0.0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_at = 0.0

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=_TIMEOUT) as http,
                http.get(url, headers={"Accept": "application/json"}, allow_redirects=False) as r,
            ):
                r.raise_for_status()
                body = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            why = failure_text(exc)
            raise OidcError(f"the identity provider cannot be reached: {why}") from exc
        if not isinstance(body, dict):
            raise OidcError(f"the identity provider sent no JSON object from {url}")
        return body

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None or time.monotonic() - self._discovered_at > (
            _DISCOVERY_LIFESPAN_S
        ):
            document = await self._get_json(str(self.auth.oidc_discovery_url))
            for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    raise OidcError(f"the provider's discovery document lacks {name!r}")
            self._discovery, self._discovered_at = document, time.monotonic()
        return self._discovery

    # -- step 1: to the provider ----------------------------------------------------------

    async def start(self, redirect_uri: str) -> tuple[str, str]:
        """The provider's authorization URL and the flow cookie's value."""
        document = await self.discovery()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        now = int(time.time())
        cookie = jwt.encode(
            {
                "aud": FLOW_AUDIENCE,
                "iat": now,
                "exp": now + FLOW_TTL_S,
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "redirect_uri": redirect_uri,
            },
            self._key,
            algorithm="HS256",
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.auth.oidc_client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.auth.oidc_scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(document["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", cookie

    # -- step 2: back from the provider ---------------------------------------------------

    async def finish(self, params: dict[str, str], cookie: str | None) -> SignedIn:
        if "error" in params:
            # Only a fixed text per known error code: error_description (and an unknown
            # code) is whatever the link's author wrote, and this page is on our origin.
            known = _PROVIDER_ERRORS.get(str(params["error"]), "it did not say why")
            raise OidcError(f"the identity provider refused the sign-in: {known}")
        if not cookie:
            raise OidcError("the sign-in took too long or started elsewhere; start again")
        try:
            flow = jwt.decode(cookie, self._key, algorithms=["HS256"], audience=FLOW_AUDIENCE)
        except jwt.PyJWTError as exc:
            raise OidcError("the sign-in took too long or started elsewhere; start again") from exc
        if not hmac.compare_digest(str(params.get("state", "")), str(flow["state"])):
            raise OidcError("the sign-in's state does not match; start again")
        code = params.get("code")
        if not code:
            raise OidcError("the identity provider sent no authorization code")
        document = await self.discovery()
        id_token = await self._exchange(document, code, flow)
        claims = await self._verify(document, id_token, str(flow["nonce"]))
        name = claims.get("name") or claims.get("preferred_username") or claims.get("email")
        return SignedIn(
            sub=str(claims["sub"]),
            role=role_from_claims(claims, self.auth.role_claim, self.roles),
            name=str(name) if name else None,
        )

    async def _exchange(self, document: dict[str, Any], code: str, flow: dict[str, Any]) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow["redirect_uri"],
            "client_id": self.auth.oidc_client_id,
            "code_verifier": flow["verifier"],
        }
        headers = {"Accept": "application/json"}
        if self.auth.oidc_client_secret:
            # client_secret_basic, the method every provider must support; RFC 6749 §2.3.1
            # form-encodes both parts before joining them
            pair = f"{quote_plus(str(self.auth.oidc_client_id))}:"
            pair += quote_plus(self.auth.oidc_client_secret)
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = str(document["token_endpoint"])
        try:
            async with (
                aiohttp.ClientSession(timeout=_TIMEOUT) as http,
                http.post(url, data=form, headers=headers, allow_redirects=False) as r,
            ):
                status = r.status
                answer = await r.json(content_type=None) if status == 200 else None
        except (TimeoutError, aiohttp.ClientError) as exc:
            why = failure_text(exc)
            raise OidcError(f"the identity provider cannot be reached: {why}") from exc
        except ValueError as exc:
            raise OidcError("the identity provider's token response is not JSON") from exc
        if status != 200:
            raise OidcError(f"the identity provider refused the code ({status})")
        id_token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(id_token, str):
            raise OidcError("the identity provider sent no ID token")
        return id_token

    async def _signing_key(self, document: dict[str, Any], kid: str | None) -> jwt.PyJWK:
        if not kid:
            raise OidcError("the ID token names no key id")
        stale = time.monotonic() - self._keys_at > _JWKS_COOLDOWN_S
        if kid not in self._keys and (stale or not self._keys):
            keyset = await self._get_json(str(document["jwks_uri"]))
            try:
                keys = jwt.PyJWKSet.from_dict(keyset).keys
            except jwt.PyJWTError as exc:
                raise OidcError(f"the provider's key set is not usable: {exc}") from exc
            self._keys = {k.key_id: k for k in keys if k.key_id}
            self._keys_at = time.monotonic()
        if kid not in self._keys:
            raise OidcError("the ID token was signed by an unknown key")
        return self._keys[kid]

    async def _verify(self, document: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in ASYMMETRIC if a in offered]
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token is malformed: {exc}") from exc
        if header.get("alg") not in algorithms:
            raise OidcError(f"the ID token's algorithm {header.get('alg')!r} is not accepted")
        key = await self._signing_key(document, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=algorithms,
                audience=self.auth.oidc_client_id,
                issuer=str(document["issuer"]),
                leeway=self.auth.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token does not verify: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.auth.oidc_client_id:
            raise OidcError("the ID token was issued to another client (azp)")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcError("the ID token's nonce does not match this sign-in")
        return claims


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
