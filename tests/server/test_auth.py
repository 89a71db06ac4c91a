"""Identity (CONTRACT.md §2): every bad token is 401; every wrong caller is 403 and audited."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import signoff.auth
from signoff.config import parse_config
from tests.server.conftest import SECRET, Live, start_live, stop_live
from tests.server.test_api import REFUND, create, is_problem


def hs(claims: dict[str, Any], key: bytes = SECRET, alg: str = "HS256", **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers or None)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "paul",
        "kind": "approver",
        "role": "publisher",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def unsigned(payload: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        import base64

        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


async def status_with(live: Live, token: str | None, raw_header: str | None = None) -> int:
    async with live.client(token) as c:
        headers = {"Authorization": raw_header} if raw_header else {}
        r = await c.get("/v1/requests", headers=headers)
    if r.status_code == 401:
        is_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
    return r.status_code


async def test_a_good_token_works(live: Live) -> None:
    assert await status_with(live, hs(claims())) == 200


# each token is made when its test runs, not when the suite is collected: a "600 s in the
# future" made at collection had passed by the time a slow full run reached it
@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("missing", lambda: None),
        ("malformed", lambda: "not-a-jwt"),
        ("expired", lambda: hs(claims(exp=int(time.time()) - 120))),
        ("not yet valid (nbf)", lambda: hs(claims(nbf=int(time.time()) + 600))),
        ("issued in the future", lambda: hs(claims(iat=int(time.time()) + 600))),
        ("wrong signature", lambda: hs(claims(), key=b"another-secret-that-is-long-enough-too!!")),
        ("alg none", lambda: unsigned(claims())),
        ("HS512 not allowed", lambda: hs(claims(), key=SECRET * 2, alg="HS512")),
        ("no exp", lambda: hs(claims(exp=None))),
        ("no iat", lambda: hs(claims(iat=None))),
        ("no sub", lambda: hs(claims(sub=None))),
        ("no kind", lambda: hs(claims(kind=None))),
        ("bad kind", lambda: hs(claims(kind="admin"))),
        ("an audience we do not expect", lambda: hs(claims(aud="someone-else"))),
        ("a stream ticket", lambda: hs(claims(aud=signoff.auth.STREAM_TICKET_AUDIENCE))),
    ],
)
async def test_bad_tokens_are_401(live: Live, name: str, make: Callable[[], str | None]) -> None:
    assert await status_with(live, make()) == 401, name


async def test_wrong_scheme_is_401(live: Live) -> None:
    assert await status_with(live, None, raw_header=f"Basic {hs(claims())}") == 401


async def test_rs_token_against_an_hs_server_is_401(live: Live) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await status_with(live, jwt.encode(claims(), private, algorithm="RS256")) == 401


async def test_small_leeway_for_clock_skew(live: Live) -> None:
    assert await status_with(live, hs(claims(exp=int(time.time()) - 5))) == 200


async def test_issuer_and_audience_when_configured(tmp_path: Path) -> None:
    config = parse_config({"auth": {"issuer": "https://idp.example", "audience": "signoff"}})
    live, server, task = await start_live(tmp_path, config)
    try:
        good = claims(iss="https://idp.example", aud="signoff")
        assert await status_with(live, hs(good)) == 200
        assert await status_with(live, hs({**good, "iss": "https://evil.example"})) == 401
        assert await status_with(live, hs({**good, "aud": "other"})) == 401
        assert await status_with(live, hs(claims(aud="signoff"))) == 401  # no iss
        assert await status_with(live, hs(claims(iss="https://idp.example"))) == 401  # no aud
        # the server's own tokens carry both
        assert await status_with(live, live.approver_token()) == 200
    finally:
        await stop_live(server, task)


async def test_role_claim_path_of_the_seed_guides(tmp_path: Path) -> None:
    config = parse_config({"auth": {"role_claim": "ably.channel.*"}})
    live, server, task = await start_live(tmp_path, config)
    try:
        req = await create(live)
        ably_style = hs(claims(role=None, **{"ably.channel.*": '{"role": "publisher"}'}))
        async with live.client(ably_style) as c:
            r = await c.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
        assert r.status_code == 200
        assert r.json()["decisions"][0]["role"] == "publisher"
        # a role in the wrong claim counts for nothing
        wrong_place = await create(live, {**REFUND, "tool_call_id": "2"})
        async with live.client(hs(claims(role="admin"))) as c:
            r = await c.post(
                f"/v1/requests/{wrong_place['id']}/decisions", json={"decision": "approve"}
            )
        is_problem(r, 403)
    finally:
        await stop_live(server, task)


async def test_nested_role_claim(tmp_path: Path) -> None:
    config = parse_config({"auth": {"role_claim": "realm_access.roles"}})
    live, server, task = await start_live(tmp_path, config)
    try:
        req = await create(live)
        token = hs(claims(role=None, realm_access={"roles": ["viewer", "admin", "publisher"]}))
        async with live.client(token) as c:
            r = await c.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
        assert r.json()["decisions"][0]["role"] == "admin"
    finally:
        await stop_live(server, task)


# -- 403, and every refusal audited ----------------------------------------------------------


async def audit_types(live: Live, request_id: str) -> list[str]:
    async with live.client(live.approver_token("ada", "admin")) as c:
        items = (await c.get("/v1/audit", params={"request_id": request_id})).json()["items"]
    return [e["type"] for e in items]


async def test_agent_deciding_is_403_and_audited(live: Live) -> None:
    req = await create(live)
    async with live.client(live.agent_token("support-bot")) as c:
        r = await c.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
    is_problem(r, 403)
    assert await audit_types(live, req["id"]) == ["request.created", "decision.refused"]


async def test_low_role_is_403_audited_and_left_pending(live: Live) -> None:
    req = await create(live)
    async with live.client(live.approver_token("erin", "editor")) as c:
        r = await c.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
        assert is_problem(r, 403)["detail"].startswith("role 'editor' may not decide")
    assert await audit_types(live, req["id"]) == ["request.created", "decision.refused"]
    async with live.client(live.approver_token()) as c:
        assert (await c.get(f"/v1/requests/{req['id']}")).json()["status"] == "pending"


async def test_self_approval_is_403_and_audited(live: Live) -> None:
    req = await create(live, agent="dana")
    async with live.client(live.approver_token("dana", "admin")) as c:
        r = await c.post(f"/v1/requests/{req['id']}/decisions", json={"decision": "approve"})
    is_problem(r, 403)
    assert await audit_types(live, req["id"]) == ["request.created", "decision.refused"]


async def test_agent_reading_another_agents_request_is_403_and_audited(live: Live) -> None:
    req = await create(live, agent="bot-a")
    async with live.client(live.agent_token("bot-b")) as c:
        is_problem(await c.get(f"/v1/requests/{req['id']}"), 403)
        is_problem(await c.get(f"/v1/requests/{req['id']}/wait", params={"timeout": 0}), 403)
        is_problem(await c.post(f"/v1/requests/{req['id']}/cancel"), 403)
        listed = (await c.get("/v1/requests")).json()["items"]
    assert listed == []
    types = await audit_types(live, req["id"])
    assert types.count("access.refused") == 2 and types.count("action.refused") == 1


async def test_approvers_may_not_create_requests(live: Live) -> None:
    async with live.client(live.approver_token()) as c:
        is_problem(await c.post("/v1/requests", json=REFUND), 403)


async def test_the_decider_comes_from_the_token_not_the_body(live: Live) -> None:
    req = await create(live)
    async with live.client(live.approver_token("paul", "publisher")) as c:
        r = await c.post(
            f"/v1/requests/{req['id']}/decisions",
            json={"decision": "approve", "by": "ada", "role": "admin"},
        )
    is_problem(r, 422)  # unknown fields are refused outright


# -- an OIDC provider's keys, with rotation ---------------------------------------------------


class KeySet:
    """A JWKS endpoint whose keys the test rotates."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0

    def add_rsa(self, kid: str) -> rsa.RSAPrivateKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._publish(
            kid, jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "RS256"
        )
        return private

    def add_ec(self, kid: str) -> ec.EllipticCurvePrivateKey:
        private = ec.generate_private_key(ec.SECP256R1())
        self._publish(
            kid, jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "ES256"
        )
        return private

    def _publish(self, kid: str, jwk: dict[str, Any], alg: str) -> None:
        self.keys[kid] = {**jwk, "kid": kid, "alg": alg, "use": "sig"}

    async def endpoint(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse({"keys": list(self.keys.values())})


@pytest.fixture
async def oidc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, KeySet]]:
    import asyncio

    import uvicorn

    from tests.server.conftest import free_port

    keyset = KeySet()
    port = free_port()
    jwks_server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/jwks.json", keyset.endpoint)]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    jwks_task = asyncio.create_task(jwks_server.serve())
    while not jwks_server.started:
        await asyncio.sleep(0.01)
    monkeypatch.setattr(signoff.auth, "_JWKS_COOLDOWN_S", 0.0)
    config = parse_config(
        {
            "auth": {
                "algorithms": ["RS256", "ES256"],
                "jwks_url": f"http://127.0.0.1:{port}/jwks.json",
                "issuer": "https://idp.example",
                "audience": "signoff",
            }
        }
    )
    live, server, task = await start_live(tmp_path, config)
    yield live, keyset
    await stop_live(server, task)
    jwks_server.should_exit = True
    await jwks_task


def oidc_claims(**overrides: Any) -> dict[str, Any]:
    return claims(**{"iss": "https://idp.example", "aud": "signoff", **overrides})


async def test_jwks_tokens_and_key_rotation(oidc: tuple[Live, KeySet]) -> None:
    live, keyset = oidc
    first = keyset.add_rsa("key-1")
    token = jwt.encode(oidc_claims(), first, algorithm="RS256", headers={"kid": "key-1"})
    assert await status_with(live, token) == 200
    fetches = keyset.fetches
    assert await status_with(live, token) == 200
    assert keyset.fetches == fetches, "the key set is cached"

    # the provider rotates: a new key appears, the old one goes
    second = keyset.add_rsa("key-2")
    del keyset.keys["key-1"]
    rotated = jwt.encode(oidc_claims(), second, algorithm="RS256", headers={"kid": "key-2"})
    assert await status_with(live, rotated) == 200
    assert keyset.fetches == fetches + 1

    ec_key = keyset.add_ec("key-3")
    assert (
        await status_with(
            live, jwt.encode(oidc_claims(), ec_key, algorithm="ES256", headers={"kid": "key-3"})
        )
        == 200
    )


async def test_jwks_rejects(oidc: tuple[Live, KeySet]) -> None:
    live, keyset = oidc
    private = keyset.add_rsa("key-1")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert (
        await status_with(
            live, jwt.encode(oidc_claims(), stranger, algorithm="RS256", headers={"kid": "key-1"})
        )
        == 401
    )
    assert (
        await status_with(
            live, jwt.encode(oidc_claims(), private, algorithm="RS256", headers={"kid": "nope"})
        )
        == 401
    )
    assert (
        await status_with(live, jwt.encode(oidc_claims(), private, algorithm="RS256")) == 401
    )  # no kid
    assert (
        await status_with(
            live,
            jwt.encode(
                oidc_claims(iss="https://evil"),
                private,
                algorithm="RS256",
                headers={"kid": "key-1"},
            ),
        )
        == 401
    )
    # key confusion: an HS256 token "signed" with the public key is refused (alg not allowed)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = jwt.api_jws.PyJWS().encode(
        json.dumps(oidc_claims()).encode(), b"x" * 32, algorithm="HS256", headers={"kid": "key-1"}
    )
    assert await status_with(live, forged) == 401
    assert public_pem  # (PyJWT itself refuses a PEM as an HMAC secret)
    # alg none against a provider config
    assert await status_with(live, unsigned(oidc_claims())) == 401
