"""A small OpenID Connect provider for tests: discovery, /authorize, /token and JWKS.

It signs ID tokens with an RSA key of its own and signs in whoever ``user`` names, at once
(as a provider does for someone already signed in there). ``mischief`` makes it misbehave
the ways a real attack or bug would: a forged state, a wrong nonce, a foreign audience, an
expired token, a signature by a key nobody published (``forged``: under the published key's
id; ``unknown-key``: under an id of its own), an HS256 token, a refusal.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.server.conftest import free_port

CLIENT_ID = "signoff-dashboard"
CLIENT_SECRET = "test-client-secret"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Provider:
    port: int
    #: the host name the browser uses for /authorize (the server uses 127.0.0.1)
    browser_host: str = "127.0.0.1"
    user: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-4711", "name": "Olivia Ops", "role": "admin"}
    )
    mischief: str | None = None
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"http://{self.browser_host}:{self.port}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["client_id"] == CLIENT_ID, q
        assert q["response_type"] == "code"
        assert q["code_challenge_method"] == "S256"
        assert "openid" in q["scope"].split()
        if self.mischief == "deny":
            target = (
                f"{q['redirect_uri']}?{urlencode({'error': 'access_denied', 'state': q['state']})}"
            )
            return RedirectResponse(target, status_code=302)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
        }
        state = "forged" if self.mischief == "state" else q["state"]
        target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': state})}"
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        auth = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if auth != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = form.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "why": "pkce"}, status_code=400)
        return JSONResponse(
            {"id_token": self.id_token(grant["nonce"]), "access_token": "x", "token_type": "Bearer"}
        )

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **self.user,
        }
        if self.mischief == "nonce":
            claims["nonce"] = "someone-elses"
        if self.mischief == "audience":
            claims["aud"] = "another-client"
        if self.mischief == "expired":
            claims["iat"], claims["exp"] = now - 900, now - 600
        if self.mischief == "hs256":
            return jwt.encode(claims, CLIENT_SECRET * 2, algorithm="HS256", headers={"kid": "k1"})
        key: Any = self.key
        kid = "k1"
        if self.mischief in ("unknown-key", "forged"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            kid = "k-rogue" if self.mischief == "unknown-key" else kid
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    async def jwks(self, request: Request) -> Response:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return JSONResponse({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})


@dataclass
class RunningProvider:
    provider: Provider
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_provider(browser_host: str = "127.0.0.1") -> RunningProvider:
    provider = Provider(port=free_port(), browser_host=browser_host)
    server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=provider.port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return RunningProvider(provider, server, task)
